"""Real processes for gateway integration tests: OpenAI stub upstreams, a private Redis, the gateway.

Every process runs on a free port and is stopped by the caller (use them as context
managers). The stubs are ``python -m devkit.stub_upstream`` processes, so a test
can kill one (a crash, as far as the gateway can tell) and start it again on the same port.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Mapping

from devkit.processes import ServiceProcess
from devkit.stack import RedisProcess

__all__ = ["ConnectionCounter", "RedisProcess", "gateway_process", "stub_process"]


def stub_process(
    model: str,
    *,
    latency_ms: float = 5,
    piece_delay_ms: float = 0,
    answer: str | None = None,
    record: bool = False,
) -> ServiceProcess:
    """An OpenAI stub upstream as a real process (not started)."""
    argv = [
        sys.executable,
        "-m",
        "devkit.stub_upstream",
        "--port",
        "{port}",
        "--model",
        model,
        "--latency-ms",
        str(latency_ms),
        "--piece-delay-ms",
        str(piece_delay_ms),
    ]
    if answer is not None:
        argv += ["--answer", answer]
    if record:
        argv.append("--record")  # the bodies it received: GET /_stub/requests
    return ServiceProcess(argv, name=f"stub-{model}", startup_timeout=30)


def gateway_process(
    *,
    vision: ServiceProcess,
    reasoner: ServiceProcess,
    redis: RedisProcess,
    env: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """``python -m gateway`` in front of the given processes (not started)."""
    return ServiceProcess(
        module="gateway",
        port_env="GATEWAY_PORT",
        name="gateway",
        startup_timeout=60,
        env={
            "GATEWAY_VISION_URL": vision.base_url,
            "GATEWAY_REASONER_URL": reasoner.base_url,
            "GATEWAY_REDIS_URL": redis.url,
            "GATEWAY_LOG_LEVEL": "warning",
            **(env or {}),
        },
    )


class ConnectionCounter:
    """A loopback TCP listener that only counts accepted connections: proof nothing dialled it."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def __enter__(self) -> ConnectionCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
