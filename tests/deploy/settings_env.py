"""The environment variable names a pydantic-settings class reads (prefix, aliases, case)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

# service name (as in docker-compose.yml) -> "module:Class" of its Settings
SETTINGS_CLASSES = {
    "gateway": "gateway.config:GatewaySettings",
    "vision": "vision.config:VisionSettings",
    "reasoner": "reasoner.config:ReasonerSettings",
}


@dataclass(frozen=True)
class EnvField:
    """One Settings field as the environment sees it."""

    field: str
    names: tuple[str, ...]  # upper-case; any of them sets the field
    default: Any


def load_settings_class(service: str) -> type[BaseSettings] | None:
    """The service's Settings class, or None while its module does not exist yet."""
    module_name, _, class_name = SETTINGS_CLASSES[service].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    return getattr(module, class_name)  # type: ignore[no-any-return]


def env_fields(settings_cls: type[BaseSettings]) -> list[EnvField]:
    """Every field with the names that set it (env_prefix + name, or its validation aliases).

    A Settings class grouped into sections (the gateway's) lists its fields itself, with
    ``env_fields()``: the sections are not variables, their fields are.
    """
    grouped = getattr(settings_cls, "env_fields", None)
    if grouped is not None:
        return [EnvField(field=f.field, names=f.names, default=f.default) for f in grouped()]
    prefix = str(settings_cls.model_config.get("env_prefix") or "")
    fields = []
    for name, info in settings_cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names = tuple(choice.upper() for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names = (alias.upper(),)
        else:
            names = (f"{prefix}{name}".upper(),)
        fields.append(EnvField(field=name, names=names, default=info.get_default(call_default_factory=True)))
    return fields


def env_names(settings_cls: type[BaseSettings]) -> set[str]:
    return {name for field in env_fields(settings_cls) for name in field.names}
