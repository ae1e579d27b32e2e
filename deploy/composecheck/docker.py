"""The docker and docker-compose commands compose-check runs (a thin, logged wrapper)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class DockerError(RuntimeError):
    """A docker or docker-compose command failed (its output is in the message)."""


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input_bytes: bytes | None = None,
    timeout: float = 1800,
    check: bool = True,
    quiet: bool = True,
) -> str:
    """Run a command; its stdout (stderr too when ``quiet`` is off, streamed)."""
    full_env = {**os.environ, **(env or {})}
    if not quiet:
        print(f"$ {' '.join(args)}", flush=True)
        proc = subprocess.run(args, env=full_env, input=input_bytes, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise DockerError(f"{' '.join(args)} exited {proc.returncode}")
        return ""
    done = subprocess.run(
        args, env=full_env, input=input_bytes, capture_output=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        raise DockerError(f"{' '.join(args)} exited {done.returncode}:\n{tail}")
    return done.stdout.decode(errors="replace")


def image_exists(name: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False).returncode == 0
    )


def image_size_mb(name: str) -> float:
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", name]).strip()) / 1e6


@dataclass
class Compose:
    """docker-compose for one project (a name of its own, so nothing else is touched)."""

    root: Path
    project: str
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, quiet: bool = True, timeout: float = 1800) -> str:
        return run(["docker-compose", "-p", self.project, *args], env=self.env, quiet=quiet, timeout=timeout)

    def container_id(self, service: str) -> str:
        return self("ps", "-q", service).strip()

    def inspect(self, service: str) -> dict:  # type: ignore[type-arg]
        cid = self.container_id(service)
        if not cid:
            return {}
        return json.loads(run(["docker", "inspect", cid]))[0]  # type: ignore[no-any-return]

    def health(self, service: str) -> str:
        state = self.inspect(service).get("State", {})
        return str(state.get("Health", {}).get("Status") or state.get("Status") or "absent")

    def wait_healthy(self, services: Sequence[str], *, timeout_s: float) -> dict[str, str]:
        """Poll every service's healthcheck until all say healthy (or the time is up)."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = {s: self.health(s) for s in services}
            if all(v == "healthy" for v in states.values()) or time.monotonic() > deadline:
                return states
            time.sleep(2)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes still labelled with this project."""
        label = f"label=com.docker.compose.project={self.project}"
        return {
            kind: run(
                ["docker", kind, "ls", "-q", "--filter", label] + (["-a"] if kind == "container" else [])
            ).split()
            for kind in ("container", "network", "volume")
        }
