"""Real servers for tests and benchmarks: a service as a subprocess, or an app in a thread.

:class:`ServiceProcess` starts ``python -m <module>`` (or any argv) on a free port with the
given environment, polls a readiness URL until it answers 200 (failing with the last lines
of the process log), and always cleans up: use it as a context manager or through the
``service_process`` fixture of ``tests/conftest.py`` (a factory; every process it made is
stopped at teardown).

:class:`ThreadedServer` runs an app under a real uvicorn in this process, for tests that
need real HTTP (streaming, client disconnects) and also want to inspect the app's objects.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServiceStartError(RuntimeError):
    """A service process died or did not become ready in time (the message ends with its log)."""


class ServiceProcess:
    """One service run as a real subprocess on a free port.

    ``argv`` may contain ``{port}`` and ``{host}`` placeholders; ``port_env`` names the
    environment variable that carries the port (e.g. ``VISION_PORT``).
    """

    def __init__(
        self, argv: Sequence[str] | None = None, *, module: str | None = None,
        env: Mapping[str, str] | None = None, port_env: str | None = None, port: int | None = None,
        host: str = "127.0.0.1", ready_path: str = "/readyz", startup_timeout: float = 60.0,
        cwd: str | Path | None = None, name: str | None = None,
    ) -> None:
        if (argv is None) == (module is None):
            raise ValueError("give exactly one of argv or module")
        self.host = host
        self.port = port or free_port(host)
        self.ready_path = ready_path
        self.startup_timeout = startup_timeout
        self.name = name or module or Path(argv[0]).name  # type: ignore[index]
        raw_argv = [sys.executable, "-m", module] if module is not None else list(argv or ())
        self.argv = [part.format(port=self.port, host=host) for part in raw_argv]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if port_env:
            self.env[port_env] = str(self.port)
        # The repo root on the path so `python -m devkit....` works from any cwd.
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), self.env.get("PYTHONPATH")]))
        self.cwd = str(cwd or REPO_ROOT)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, wait: bool = True) -> ServiceProcess:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if self._log is None:
            # Kept open across restarts (closed in close()), so one log holds every run.
            self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
                prefix=f"{self.name}-", suffix=".log", delete=False
            )
            self.log_path = Path(self._log.name)
        self._process = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() also ends its children
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll the readiness URL until 200; raise :class:`ServiceStartError` with the log tail."""
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        url = self.base_url + self.ready_path
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.running:
                    code = self._process.returncode if self._process else None
                    raise ServiceStartError(f"{self.name} exited with code {code}{self._tail_note()}")
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
        raise ServiceStartError(
            f"{self.name} not ready at {url} after {timeout or self.startup_timeout:.0f}s "
            f"(last: {last}){self._tail_note()}"
        )

    def kill(self) -> None:
        """SIGKILL the service (a crash, as far as its clients can tell)."""
        self._signal(signal.SIGKILL)
        self._reap(5.0)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in ``timeout``."""
        if not self.running:
            return
        self._signal(signal.SIGTERM)
        if not self._reap(timeout):
            self.kill()

    def restart(self, *, wait: bool = True) -> ServiceProcess:
        """Stop and start again on the same port."""
        self.stop()
        return self.start(wait=wait)

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServiceProcess:
        try:
            return self.start() if not self.running else self
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _signal(self, sig: signal.Signals) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)  # the group we created in start()

    def _reap(self, timeout: float) -> bool:
        if self._process is None:
            return True
        try:
            self._process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _tail_note(self) -> str:
        tail = self.log_tail()
        return f"\n--- last lines of {self.name}'s log ---\n{tail}" if tail else " (empty log)"


class ThreadedServer:
    """An ASGI app served by a real uvicorn on a free port, in a background thread."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", ready_path: str | None = "/readyz",
                 startup_timeout: float = 30.0) -> None:
        self.host = host
        self.port = free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)
        self.ready_path = ready_path
        self.startup_timeout = startup_timeout

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceStartError("uvicorn did not start in the test thread")
            time.sleep(0.02)
        if self.ready_path:
            with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
                while client.get(self.ready_path).status_code != 200:
                    if time.monotonic() > deadline:
                        raise ServiceStartError(f"{self.ready_path} never answered 200")
                    time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(15)
