"""Keeps the deployment files honest while no Docker engine can run them here.

- docker-compose.yml (alone and with the GPU override) validates against the Compose
  Specification's JSON schema (vendored: vendor/README.md);
- every Dockerfile COPY source exists and is not excluded by .dockerignore;
- every variable the compose files set for a service is one that service's Settings reads;
- .env.example lists every setting with its default and meaning, and nothing nobody reads.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from deploy.local.settings import LAUNCHER_VARIABLES
from tests.deploy.settings_env import SETTINGS_CLASSES, env_fields, env_names, load_settings_class

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.gpu.yml")
SCHEMA = json.loads((Path(__file__).parent / "vendor" / "compose-spec.json").read_text())
APP_SERVICES = tuple(SETTINGS_CLASSES)


def load_compose(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / name).read_text())  # type: ignore[no-any-return]


def merged_compose() -> dict[str, Any]:
    """The base file with the GPU override applied (environment maps merge by key)."""
    base = load_compose("docker-compose.yml")
    override = load_compose("docker-compose.gpu.yml")
    for service, extra in override["services"].items():
        target = base["services"][service]
        target.setdefault("environment", {}).update(extra.get("environment", {}))
    return base


def settings_or_skip(service: str) -> Any:
    cls = load_settings_class(service)
    if cls is None:
        pytest.skip(f"{SETTINGS_CLASSES[service]} does not exist yet")
    return cls


# ── the compose files ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_validates_against_the_compose_spec(name: str) -> None:
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(load_compose(name)), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_compose_file() -> None:
    # guards against a schema that accepts anything (a wrong $ref, an empty file)
    broken = {"services": {"gateway": {"depends_on": {"redis": {"condition": "when_it_feels_like_it"}}}}}
    assert list(Draft202012Validator(SCHEMA).iter_errors(broken))


def test_stack_has_the_four_services_with_healthchecks_and_ordered_start() -> None:
    services = load_compose("docker-compose.yml")["services"]
    assert set(services) == {"redis", "vision", "reasoner", "gateway"}
    for name, service in services.items():
        assert "test" in service["healthcheck"], f"{name} has no healthcheck"
    for name in APP_SERVICES:
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name]["build"]["context"] == "."
        assert services[name]["env_file"] == [{"path": ".env", "required": False}]
    assert services["gateway"]["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ("redis", "vision", "reasoner")
    }


def test_model_services_share_the_model_volume_and_gpu_override_reserves_gpus() -> None:
    base, gpu = load_compose("docker-compose.yml"), load_compose("docker-compose.gpu.yml")
    for name in ("vision", "reasoner"):
        assert any(v.endswith(":/models") for v in base["services"][name]["volumes"])
        devices = gpu["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
        assert gpu["services"][name]["environment"][f"{name.upper()}_DTYPE"] == "bfloat16"
    assert gpu["services"]["vision"]["environment"]["VISION_BACKEND"] == "glm"
    assert "models" in base["volumes"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_variable_compose_sets_is_read_by_the_services_settings(service: str) -> None:
    settings_cls = settings_or_skip(service)
    environment = merged_compose()["services"][service]["environment"]
    unknown = sorted(set(map(str.upper, environment)) - env_names(settings_cls))
    assert not unknown, f"{service}: compose sets {unknown}, which {settings_cls.__name__} does not read"


# ── Dockerfiles ────────────────────────────────────────────────────────────────────


def dockerfiles() -> list[Path]:
    services = load_compose("docker-compose.yml")["services"]
    return [REPO / s["build"]["dockerfile"] for s in services.values() if "build" in s]


def copy_sources(dockerfile: Path) -> list[str]:
    """Sources of every COPY/ADD from the build context (not --from=another stage)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    sources = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if words and words[0].upper() in {"COPY", "ADD"}:
            args = [w for w in words[1:] if not w.startswith("--")]
            if any(w.startswith("--from") for w in words[1:]):
                continue
            sources += args[:-1]
    return sources


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes."""
    ignored = False
    for pattern in patterns:
        negate, pattern = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
        matches = pattern == "**" or fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/")
        if matches:
            ignored = not negate
    return ignored


def test_dockerfiles_exist_and_every_copy_source_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for dockerfile in dockerfiles():
        assert dockerfile.is_file(), f"{dockerfile} is missing"
        sources = copy_sources(dockerfile)
        assert sources, f"{dockerfile} copies nothing"
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile.relative_to(REPO)}: COPY {source} does not exist"
            assert not dockerignored(source, patterns), f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_dockerfile_runs_the_service_as_non_root_with_a_healthcheck(service: str) -> None:
    text = (REPO / "services" / service / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert re.search(r"^USER (?!root)\S+", text, re.M)
    assert "HEALTHCHECK" in text and "/readyz" in text
    assert f'CMD ["python", "-m", "{service}"]' in text


# ── .env.example ───────────────────────────────────────────────────────────────────

_EXAMPLE_LINE = re.compile(r'^#?\s*([A-Z][A-Z0-9_]*)=("[^"]*"|\S*)\s*(?:#\s*(.*))?$')


def env_example() -> dict[str, tuple[str, str]]:
    """NAME -> (value, meaning) for every variable line, commented out or not."""
    entries = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        match = _EXAMPLE_LINE.match(line.strip())
        if match:
            value = match.group(2).removeprefix('"').removesuffix('"')
            entries[match.group(1)] = (value, (match.group(3) or "").strip())
    return entries


def known_settings() -> dict[str, Any]:
    return {service: load_settings_class(service) for service in APP_SERVICES}


def test_env_example_variables_each_have_a_meaning() -> None:
    entries = env_example()
    assert len(entries) > 20
    missing = [name for name, (_, meaning) in entries.items() if not meaning]
    assert not missing, f"no meaning given for {missing}"


def test_every_env_example_variable_is_read_by_someone() -> None:
    classes = known_settings()
    if None in classes.values():
        pytest.skip(f"Settings not importable yet: {[s for s, c in classes.items() if c is None]}")
    readers = set(LAUNCHER_VARIABLES) | {n for cls in classes.values() for n in env_names(cls)}
    unread = sorted(set(env_example()) - readers)
    assert not unread, f".env.example lists {unread}, which no Settings class nor the launcher reads"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_setting_is_in_env_example_with_its_default(service: str) -> None:
    settings_cls = settings_or_skip(service)
    entries = env_example()
    problems = []
    for field in env_fields(settings_cls):
        listed = [name for name in field.names if name in entries]
        if not listed:
            problems.append(f"{field.names[0]} is missing")
        elif not any(same_default(entries[name][0], field.default) for name in listed):
            problems.append(f"{listed[0]}={entries[listed[0]][0]!r} but the default is {field.default!r}")
    assert not problems, f"{settings_cls.__name__} vs .env.example: " + "; ".join(problems)


def test_launcher_variables_are_in_env_example_with_their_defaults() -> None:
    entries = env_example()
    for name, (default, _) in LAUNCHER_VARIABLES.items():
        assert name in entries, f"{name} is missing from .env.example"
        written = entries[name][0]
        assert written == default, f"{name}: .env.example says {written!r}, the launcher {default!r}"


def same_default(written: str, default: Any) -> bool:
    """Whether the value written in .env.example is the field's default."""
    if isinstance(default, Path):  # computed per machine (e.g. <repo>/.cache/models): documented in words
        return True
    if default is None or default == ():
        return written == ""
    if isinstance(default, tuple):  # comma-separated in the environment
        return tuple(item.strip() for item in written.split(",")) == default
    if isinstance(default, bool):
        return written.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(written) == float(default)
        except ValueError:
            return False
    return written == str(default)
