"""Issue 13's figures, before/after: idle connections held, and memory after 16-bit images.

Each variant is a directory holding ``services/gateway/src`` and ``services/common/src``
(``.`` for the working tree, or an export of an older commit); each runs as a real
``python -m gateway`` with API keys set, in front of stub upstreams and a private Redis,
one variant after the other on this machine:

- **connections held**: 300 sockets connect and send nothing; how many the gateway still
  holds open after 2 s and after 15 s, and whether a normal request is served meanwhile;
- **memory**: the gateway's RSS idle, its peak while answering four 16-bit RGBA PNGs of
  6300x6300 (the issue's request), then two of 4000x4000 (accepted by both variants),
  and its RSS 5 s after each.

    mkdir /tmp/before && git archive <commit> services/gateway services/common | tar -x -C /tmp/before
    .venv/bin/python bench/hostile_figures.py --variant before=/tmp/before --variant after=.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.gateway_overhead import gateway, private_redis, stub  # noqa: E402
from devkit.processes import ServiceProcess  # noqa: E402
from devkit.screens import png_16bit_rgba  # noqa: E402

KEY = "bench-key"
IDLE_SOCKETS = 300




def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def connections_held(gw: ServiceProcess) -> dict[str, Any]:
    idle = [socket.create_connection((gw.host, gw.port)) for _ in range(IDLE_SOCKETS)]
    try:
        time.sleep(2)
        after_2s = sum(still_open(s) for s in idle)
        with httpx.Client(base_url=gw.base_url, timeout=10) as client:
            served = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code
        time.sleep(13)
        after_15s = sum(still_open(s) for s in idle)
    finally:
        for s in idle:
            s.close()
    return {
        "idle_sockets": IDLE_SOCKETS,
        "held_after_2s": after_2s,
        "held_after_15s": after_15s,
        "normal_request_meanwhile": served,
    }


def memory(gw: ServiceProcess, pngs: list[bytes]) -> dict[str, Any]:
    proc = psutil.Process(gw.pid)
    idle = proc.memory_info().rss
    peak = idle
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    parts: list[dict[str, Any]] = [{"type": "text", "text": "what is this?"}]
    parts += [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(p).decode()}}
        for p in pngs
    ]
    body = {"model": "direct", "messages": [{"role": "user", "content": parts}]}
    started = time.perf_counter()
    with httpx.Client(base_url=gw.base_url, timeout=120) as client:
        resp = client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    elapsed = time.perf_counter() - started
    time.sleep(5)
    done.set()
    sampler.join()
    mb = 2**20
    return {
        "status": resp.status_code,
        "seconds": round(elapsed, 2),
        "rss_idle_mb": round(idle / mb),
        "rss_peak_mb": round(peak / mb),
        "rss_5s_after_mb": round(proc.memory_info().rss / mb),
    }


def run_variant(root: Path) -> dict[str, Any]:
    env = {"GATEWAY_API_KEYS": KEY, "GATEWAY_LOG_LEVEL": "warning"}
    with (
        private_redis() as redis_url,
        stub("ocr-lite") as vision,
        stub("stub-reasoner") as reasoner,
        gateway(vision.base_url, reasoner.base_url, redis_url, env, root) as gw,
    ):
        big, medium = png_16bit_rgba(6300, 6300), png_16bit_rgba(4000, 4000)
        return {
            "connections": connections_held(gw),
            "memory_4x_6300x6300_16bit": memory(gw, [big] * 4),
            "memory_2x_4000x4000_16bit": memory(gw, [medium] * 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--variant", action="append", required=True, help="name=directory")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}", flush=True)
    results = {}
    for spec in args.variant:
        name, _, directory = spec.partition("=")
        results[name] = run_variant(Path(directory).resolve())
        print(name, json.dumps(results[name], indent=1), flush=True)
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
