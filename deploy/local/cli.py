"""``python -m deploy.local``: Redis, the three services under supervisord, ready, then wait for Ctrl-C.

supervisord runs in its own session, so a Ctrl-C reaches only this launcher, which then
stops supervisord (which stops every program and its process group) and, as a last
resort, kills any program supervisord could not stop. Nothing is left behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import xmlrpc.client
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from deploy.local.banner import ready_banner
from deploy.local.logtail import LogTail
from deploy.local.readiness import wait_until_ready
from deploy.local.redis import RedisPlan, choose_redis
from deploy.local.settings import REPO_ROOT, LaunchSettings, load_environment, service_environment
from deploy.local.supervisor import SupervisorPaths, plan_programs, render_config

EXAMPLE_IMAGE = REPO_ROOT / "examples" / "order.png"
SHUTDOWN_TIMEOUT_S = 60
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def main() -> int:
    env = load_environment(os.environ, env_file=REPO_ROOT / ".env")
    settings = LaunchSettings.from_env(env)
    busy = [
        f"{port} ({name.upper()}_PORT)" for name, port in settings.service_ports.items() if _listening(port)
    ]
    if busy:
        print(
            f"error: port {', '.join(busy)} already in use; stop what uses it or set another port",
            file=sys.stderr,
        )
        return 2

    redis_plan = choose_redis(settings.redis_url, embedded_port=settings.redis_port)
    _say_redis(redis_plan, settings.redis_url)
    programs = plan_programs(settings, redis_plan)
    paths = SupervisorPaths.for_settings(settings)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    config = render_config(programs, paths, directory=settings.repo_root, as_root=os.geteuid() == 0)
    paths.config.write_text(config)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())

    tail = LogTail(
        {p.name: paths.log_file(p.name) for p in programs} | {"supervisor": paths.log_file("supervisord")}
    )
    tail.start()
    supervisord = subprocess.Popen(
        [_supervisord(), "-c", str(paths.config)],
        env=service_environment(env, settings, redis_url=redis_plan.url),
        cwd=settings.repo_root,
        start_new_session=True,  # Ctrl-C goes to us; we stop supervisord in order
        preexec_fn=_die_with_parent,
    )
    try:
        return _serve(settings, paths, supervisord, stop)
    finally:
        _shutdown(supervisord, paths)
        tail.stop()
        print("FlashSight stopped.", flush=True)


def _serve(
    settings: LaunchSettings,
    paths: SupervisorPaths,
    supervisord: subprocess.Popen[bytes],
    stop: threading.Event,
) -> int:
    """Wait for readiness, print the banner, then wait for Ctrl-C or supervisord's exit."""
    names, timeout = list(settings.service_ports), settings.ready_timeout
    print(f"Waiting for {', '.join(names)} to be ready (up to {timeout:.0f} s) ...", flush=True)
    state = wait_until_ready(
        {name: f"http://127.0.0.1:{port}/readyz" for name, port in settings.service_ports.items()},
        timeout=timeout,
        still_running=lambda: supervisord.poll() is None and not stop.is_set() and not _gave_up(paths),
    )
    if stop.is_set():
        return 0
    if supervisord.poll() is not None:
        print(
            f"error: supervisord exited ({supervisord.returncode}); see {paths.log_file('supervisord')}",
            file=sys.stderr,
        )
        return 1
    if not state.all_ready(names):
        gave_up = _gave_up(paths)
        why = f"{', '.join(gave_up)} kept exiting at start" if gave_up else f"not ready after {timeout:.0f} s"
        print(f"error: {why}:", file=sys.stderr)
        for name in names:
            if name not in state.ready:
                print(f"  {name}: {state.last.get(name)}; see {paths.log_file(name)}", file=sys.stderr)
        return 1
    print(ready_banner(settings.gateway_port, EXAMPLE_IMAGE, settings.log_dir), flush=True)
    while not stop.wait(0.5):
        if supervisord.poll() is not None:
            print(f"error: supervisord exited ({supervisord.returncode})", file=sys.stderr)
            return 1
    return 0


def _shutdown(supervisord: subprocess.Popen[bytes], paths: SupervisorPaths) -> None:
    """Stop supervisord (it stops every program's group); kill what it could not."""
    pids = _program_pids(paths)
    if supervisord.poll() is None:
        print("Stopping FlashSight ...", flush=True)
        supervisord.terminate()
        try:
            supervisord.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            supervisord.kill()
            supervisord.wait()
    for pid in pids:  # each program leads its own process group (supervisord calls setpgrp)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _process_info(paths: SupervisorPaths) -> list[dict[str, Any]]:
    """supervisord's view of every program (empty if it does not answer)."""
    transport = SupervisorTransport(None, None, serverurl=f"unix://{paths.socket}")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    try:
        infos: list[dict[str, Any]] = proxy.supervisor.getAllProcessInfo()  # type: ignore[assignment]
    except (OSError, xmlrpc.client.Error):
        return []
    return infos


def _program_pids(paths: SupervisorPaths) -> list[int]:
    return [int(info["pid"]) for info in _process_info(paths) if info["pid"]]


def _gave_up(paths: SupervisorPaths) -> list[str]:
    """Programs supervisord stopped restarting (FATAL: they died at start too often)."""
    return [str(info["name"]) for info in _process_info(paths) if info["statename"] == "FATAL"]


def _die_with_parent() -> None:
    """Linux: supervisord gets SIGTERM if this launcher is killed outright (no orphaned stack)."""
    if sys.platform == "linux":
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _supervisord() -> str:
    candidate = Path(sys.executable).with_name("supervisord")
    return str(candidate) if candidate.exists() else "supervisord"


def _listening(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _say_redis(plan: RedisPlan, wanted: str) -> None:
    if plan.embedded:
        print(f"Redis: nothing answers at {wanted}; starting an embedded Valkey at {plan.url}", flush=True)
    else:
        print(f"Redis: using {plan.url}", flush=True)
