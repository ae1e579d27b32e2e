"""`python -m deploy.local` (what `make run` runs) end to end, on free ports, no Redis reachable:

the embedded Valkey starts, all three /readyz answer 200, log lines show prefixed and land
in the log folder, the printed curl example gets the order number, a killed service is
restarted while the others keep answering, and SIGINT (Ctrl-C) leaves no process behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.local.redis import free_port

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("vision", "reasoner", "gateway")
READY_LINE = "FlashSight is ready."
MARKER_VAR = "FLASHSIGHT_TEST_MARKER"


def _missing_services() -> list[str]:
    missing = []
    for name in SERVICES:
        try:
            found = importlib.util.find_spec(f"{name}.__main__") is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(f"python -m {name}")
    return missing


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(bool(_missing_services()), reason=f"not runnable yet: {_missing_services()}"),
]


def order_number() -> str:
    spec = importlib.util.spec_from_file_location("make_samples", REPO / "examples" / "make_samples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.ORDER_NUMBER)


class Output:
    """Collects the launcher's stdout lines in a thread; tells when a line appeared."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            if self._proc.poll() is not None:
                time.sleep(0.5)  # let the reader drain
                return any(text in line for line in self.lines)
            time.sleep(0.2)
        return False

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.lines[-n:])

    def curl_command(self) -> str:
        """The command printed between 'try it:' and 'Ctrl-C stops everything.'."""
        start = next(i for i, line in enumerate(self.lines) if line.strip() == "try it:")
        end = next(i for i, line in enumerate(self.lines) if line.startswith("Ctrl-C stops"))
        return "\n".join(self.lines[start + 1 : end]).strip()


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def marked_processes(marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes (zombies aside) whose environment carries ``marker``."""
    found = []
    needle = f"{MARKER_VAR}={marker}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state = next(ln for ln in (proc / "status").read_text().splitlines() if ln.startswith("State:"))
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, StopIteration):
            continue
        if "zombie" not in state:
            found.append((int(proc.name), command.strip()))
    return found


def service_pid(marker: str, name: str) -> int | None:
    return next((pid for pid, command in marked_processes(marker) if command.endswith(f"-m {name}")), None)


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def test_local_run_end_to_end_then_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    ports = {"GATEWAY_PORT": free_port(), "VISION_PORT": free_port(), "REASONER_PORT": free_port()}
    env = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nobody there: the embedded Valkey starts
        "FLASHSIGHT_LOG_DIR": str(tmp_path / "logs"),
        "FLASHSIGHT_RUN_DIR": str(tmp_path / "run"),
        "FLASHSIGHT_READY_TIMEOUT": "600",
        MARKER_VAR: marker,
    }
    for name in ("GATEWAY_VISION_URL", "GATEWAY_REASONER_URL", "GATEWAY_REDIS_URL", "REDIS_PORT"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.local"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(proc)
    try:
        assert output.wait_for(READY_LINE, timeout=660), f"launcher never got ready:\n{output.tail()}"
        assert any("starting an embedded Valkey" in line for line in output.lines)
        for port in ports.values():
            assert readyz(port) == 200
        for name in (*SERVICES, "redis", "supervisor"):
            assert any(line.startswith(f"[{name}]") for line in output.lines), f"no [{name}] lines"
        for name in SERVICES:
            assert (tmp_path / "logs" / f"{name}.log").stat().st_size > 0

        # the printed example works as printed
        answer = subprocess.run(
            ["bash", "-c", output.curl_command()], capture_output=True, text=True, timeout=120, check=True
        )
        completion = json.loads(answer.stdout)
        assert order_number() in completion["choices"][0]["message"]["content"]

        # supervisord restarts a dead service; the others keep answering meanwhile
        reasoner = service_pid(marker, "reasoner")
        assert reasoner is not None
        os.kill(reasoner, signal.SIGKILL)
        assert readyz(ports["VISION_PORT"]) == 200
        restarted = wait_until(
            lambda: (
                service_pid(marker, "reasoner") not in (None, reasoner)
                and readyz(ports["REASONER_PORT"]) == 200
            ),
            timeout=180,
        )
        assert restarted, f"reasoner was not restarted:\n{output.tail()}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output.tail()
    assert output.wait_for("FlashSight stopped.", timeout=5)
    assert wait_until(lambda: not marked_processes(marker), timeout=10), marked_processes(marker)
