"""The gateway bench runs end to end in quick mode and prints its figures (never judged for speed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from devkit.processes import REPO_ROOT

pytestmark = pytest.mark.integration


def test_quick_bench_prints_overhead_ratios_and_cascade_hit_vs_miss() -> None:
    # wrk when installed; else the aiohttp fallback (a test never apt-get installs wrk)
    loadgen = "auto" if shutil.which("wrk") else "aiohttp"
    run = subprocess.run(
        [sys.executable, "bench/gateway_overhead.py", "--quick", "--loadgen", loadgen],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    for scenario in ("text", "image"):
        for concurrency in (1, 8, 32):
            line = rf"^{scenario} c={concurrency}: gateway added p50 [+-][\d.]+ ms, p95 [+-][\d.]+ ms; "
            assert re.search(line + r"throughput ratio [\d.]+x", out, re.M), out
    assert re.search(r"caption cache miss: p50 +[\d.]+ ms", out), out
    assert re.search(r"caption cache hit : p50 +[\d.]+ ms", out), out
    assert "WARNING" not in out, out  # no failed requests, every cascade answer the expected miss/hit
