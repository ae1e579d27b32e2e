"""Closed-loop HTTP load for the benches: ``wrk`` when installed, else an aiohttp generator.

Both keep ``concurrency`` keep-alive connections busy with the same POST for a fixed
duration and report requests, errors and the p50/p95 latency of that run.

wrk (C, event loop, one thread) costs little CPU, which matters on a 2-core machine
where the load generator shares the cores with the servers it measures. The aiohttp
fallback is pure Python: it takes a core's worth of CPU at high concurrency, so its
throughput figures are lower bounds (the script says which generator ran).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# wrk: the body comes from a file (JSON with a data URL is too long for the command line);
# done() prints the figures as one JSON line, because wrk's own summary has no p95.
_WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p95_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95)))
end
"""


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One run against one URL at one concurrency."""

    requests: int
    duration_s: float
    errors: int
    p50_ms: float
    p95_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def wrk_path() -> str | None:
    """The wrk binary, installing the Debian package first when we are root and apt is there."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        timeout=300,
    )
    return shutil.which("wrk")


class WrkLoad:
    """Runs ``wrk -t1 -c<concurrency>`` with the POST body from a temporary file."""

    name = "wrk"

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self._dir = tempfile.TemporaryDirectory(prefix="bench-wrk-")
        self._script = Path(self._dir.name, "post.lua")
        self._script.write_text(_WRK_SCRIPT)
        self._bodies: dict[bytes, Path] = {}

    def run(self, url: str, body: bytes, *, concurrency: int, duration_s: int) -> LoadResult:
        argv = [
            self.binary, "-t1", f"-c{concurrency}", f"-d{duration_s}s", "--timeout", "10s",
            "-s", str(self._script), url,
        ]  # fmt: skip
        env = {**os.environ, "BENCH_BODY_FILE": str(self._body_file(body))}
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration_s + 30)
        line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result (exit {out.returncode}): {out.stderr or out.stdout}")
        data = json.loads(line.removeprefix("BENCH_JSON "))
        return LoadResult(
            requests=data["requests"],
            duration_s=data["duration_us"] / 1e6,
            errors=data["errors"],
            p50_ms=data["p50_us"] / 1000,
            p95_ms=data["p95_us"] / 1000,
        )

    def close(self) -> None:
        self._dir.cleanup()

    def _body_file(self, body: bytes) -> Path:
        if body not in self._bodies:
            path = Path(self._dir.name, f"body{len(self._bodies)}.json")
            path.write_bytes(body)
            self._bodies[body] = path
        return self._bodies[body]


class AiohttpLoad:
    """The fallback: ``concurrency`` asyncio workers over one pooled aiohttp session."""

    name = "aiohttp (fallback: costs CPU the servers then lack; throughput is a lower bound)"

    def run(self, url: str, body: bytes, *, concurrency: int, duration_s: int) -> LoadResult:
        return asyncio.run(_aiohttp_load(url, body, concurrency=concurrency, duration_s=duration_s))

    def close(self) -> None:
        pass


async def _aiohttp_load(url: str, body: bytes, *, concurrency: int, duration_s: float) -> LoadResult:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        deadline = started + duration_s

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        ok = resp.status < 400
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(
        requests=len(latencies),
        duration_s=elapsed,
        errors=errors,
        p50_ms=percentile(latencies, 50) * 1000,
        p95_ms=percentile(latencies, 95) * 1000,
    )


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (inclusive method); 0.0 for no values."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def pick_load(kind: str) -> WrkLoad | AiohttpLoad:
    """``wrk`` (installed if missing and possible) unless ``kind`` is ``aiohttp``."""
    if kind != "aiohttp":
        binary = wrk_path()
        if binary:
            return WrkLoad(binary)
        if kind == "wrk":
            raise SystemExit("wrk is not installed and could not be installed (apt-get install wrk)")
    return AiohttpLoad()


def print_comparison(
    results: Mapping[tuple[str, int], Sequence[LoadResult]],
    targets: Sequence[str],
    concurrencies: Sequence[int],
) -> None:
    """One line per target and concurrency: medians over rounds, and what it adds to ``direct``.

    ``results[target, concurrency]`` holds one run per round, the rounds in the same order
    for every target (so each round's p50 is compared with ``direct``'s in that round).
    """
    width = max(len(target) for target in targets)
    header = f"{'c':>3} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8} {'added p50':>10} {'ratio':>6} err"
    print(f"{'target':{width}} {header}")
    for concurrency in concurrencies:
        direct = results["direct", concurrency]
        direct_rps = sum(r.requests for r in direct) / sum(r.duration_s for r in direct)
        for target in targets:
            runs = results[target, concurrency]
            rps = sum(r.requests for r in runs) / sum(r.duration_s for r in runs)
            added = statistics.median(r.p50_ms - d.p50_ms for r, d in zip(runs, direct, strict=True))
            print(
                f"{target:{width}} {concurrency:>3} {statistics.median(r.p50_ms for r in runs):8.2f} "
                f"{statistics.median(r.p95_ms for r in runs):8.2f} {rps:8.1f} {added:+10.2f} "
                f"{rps / direct_rps:6.2f}x {sum(r.errors for r in runs)}"
            )
