"""What the launcher reads: environment > .env > defaults.

The launcher reads only the variables below; everything else in the environment (or in
``.env``) is passed through untouched to the services, whose own Settings read it. Only
the variables the launcher owns are derived here: REDIS_URL when it starts an embedded
server, and the gateway's upstream URLs from VISION_PORT / REASONER_PORT unless they
are set explicitly.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

REPO_ROOT = Path(__file__).resolve().parents[2]

# name -> (default, meaning); .env.example documents each of these (tests/deploy checks it).
LAUNCHER_VARIABLES: dict[str, tuple[str, str]] = {
    "GATEWAY_PORT": ("8080", "gateway port"),
    "VISION_PORT": ("8081", "vision service port"),
    "REASONER_PORT": ("9000", "reasoner service port"),
    "REDIS_URL": ("redis://127.0.0.1:6379/0", "Redis used when it answers PING"),
    "REDIS_PORT": ("", "port of the embedded Valkey when REDIS_URL does not answer (empty: a free port)"),
    "FLASHSIGHT_LOG_DIR": ("logs", "where each service's log file goes"),
    "FLASHSIGHT_RUN_DIR": (".cache/run", "where the generated supervisord config and socket go"),
    "FLASHSIGHT_READY_TIMEOUT": ("600", "seconds to wait for every /readyz before giving up"),
}


def load_environment(environ: Mapping[str, str], *, env_file: Path) -> dict[str, str]:
    """The environment the stack runs with: values in ``env_file`` under the real environment."""
    from_file = (
        {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.is_file() else {}
    )
    return {**from_file, **environ}


@dataclass(frozen=True)
class LaunchSettings:
    """Ports, Redis, paths and timeouts of one local run."""

    gateway_port: int
    vision_port: int
    reasoner_port: int
    redis_url: str
    redis_port: int | None
    log_dir: Path
    run_dir: Path
    ready_timeout: float
    repo_root: Path = REPO_ROOT
    python: str = sys.executable

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, repo_root: Path = REPO_ROOT) -> LaunchSettings:
        """Build from a merged environment; a bad value names its variable."""

        def value(name: str) -> str:
            return env.get(name) or LAUNCHER_VARIABLES[name][0]

        def number(name: str, kind: type[int] | type[float]) -> int | float:
            try:
                return kind(value(name))
            except ValueError:
                raise SystemExit(f"{name}={value(name)!r} is not a {kind.__name__}") from None

        redis_port = value("REDIS_PORT")
        return cls(
            gateway_port=int(number("GATEWAY_PORT", int)),
            vision_port=int(number("VISION_PORT", int)),
            reasoner_port=int(number("REASONER_PORT", int)),
            redis_url=value("REDIS_URL"),
            redis_port=int(number("REDIS_PORT", int)) if redis_port else None,
            log_dir=repo_root / value("FLASHSIGHT_LOG_DIR"),
            run_dir=repo_root / value("FLASHSIGHT_RUN_DIR"),
            ready_timeout=float(number("FLASHSIGHT_READY_TIMEOUT", float)),
            repo_root=repo_root,
        )

    @property
    def service_ports(self) -> dict[str, int]:
        """The three services and their ports, in start order."""
        return {"vision": self.vision_port, "reasoner": self.reasoner_port, "gateway": self.gateway_port}


def service_environment(
    env: Mapping[str, str], settings: LaunchSettings, *, redis_url: str
) -> dict[str, str]:
    """The environment every program gets: ports, Redis and upstream URLs filled in."""
    derived = {
        "GATEWAY_PORT": str(settings.gateway_port),
        "VISION_PORT": str(settings.vision_port),
        "REASONER_PORT": str(settings.reasoner_port),
        "GATEWAY_VISION_URL": f"http://127.0.0.1:{settings.vision_port}",
        "GATEWAY_REASONER_URL": f"http://127.0.0.1:{settings.reasoner_port}",
    }
    merged = {**derived, **env}  # an explicit GATEWAY_*_URL (say, a remote vLLM) wins
    merged.update(
        {
            "REDIS_URL": redis_url,  # the launcher's choice, embedded or not
            "PYTHONUNBUFFERED": "1",  # log lines reach logs/ (and the terminal) as they happen
        }
    )
    return merged
