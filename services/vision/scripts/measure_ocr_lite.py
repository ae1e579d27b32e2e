"""Measure ocr-lite: warm OCR latency on the 750x1000 order page, and the service's memory.

Run from the repository root (the generated screenshot comes from the test helpers)::

    PYTHONPATH=. .venv/bin/python services/vision/scripts/measure_ocr_lite.py [--runs 20]

Part 1 times ``OcrEngine.read`` in this process after one warm-up read. Part 2 starts
``python -m vision`` on a free port, sends the order page with "订单号是多少?" ``--runs``
times over HTTP, and reads the server's RSS and peak RSS from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from vision.backends.ocr import OcrEngine

from devkit.screens import as_data_url, image_bytes_of, order_screenshot


def _memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def _summary(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    return f"median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, min {ordered[0] * 1000:.0f} ms"


def measure_in_process(runs: int) -> None:
    engine = OcrEngine.create()
    image = image_bytes_of(order_screenshot())
    engine.read(image)  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        engine.read(image)
        times.append(time.perf_counter() - started)
    memory = _memory_mb(os.getpid())
    print(f"OCR warm, 750x1000 order page, {runs} runs: {_summary(times)}")
    print(f"  this process: RSS {memory['VmRSS']:.0f} MB, peak {memory['VmHWM']:.0f} MB")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure_service(runs: int) -> None:
    port = _free_port()
    env = {**os.environ, "VISION_PORT": str(port), "VISION_LOG_LEVEL": "warning"}
    process = subprocess.Popen([sys.executable, "-m", "vision"], env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            ready = _memory_mb(process.pid)
            image = {"type": "image_url", "image_url": {"url": as_data_url(order_screenshot())}}
            question = {"type": "text", "text": "订单号是多少?"}
            body = {"messages": [{"role": "user", "content": [image, question]}]}
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                client.post("/v1/chat/completions", json=body).raise_for_status()
                times.append(time.perf_counter() - started)
        served = _memory_mb(process.pid)
        print(f"python -m vision, POST /v1/chat/completions x{runs}: {_summary(times)}")
        print(f"  server RSS when ready {ready['VmRSS']:.0f} MB; after the requests "
              f"{served['VmRSS']:.0f} MB, peak {served['VmHWM']:.0f} MB")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    measure_in_process(args.runs)
    measure_service(args.runs)


if __name__ == "__main__":
    main()
