"""``bench/cpu_linear_layouts.py --quick`` prints every layout side by side (speed never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

from devkit.processes import REPO_ROOT


def test_quick_mode_prints_each_layout_against_row_major() -> None:
    run = subprocess.run(
        [sys.executable, "bench/cpu_linear_layouts.py", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    header = next(line for line in out.splitlines() if line.startswith("| rows | part |"))
    assert "row-major" in header and "onednn-packed" in header, out  # the reasoner's layout is always there
    cell = r"[\d.]+ ms, [\d.]+ GB/s \([\d.]+x\)"
    for rows in (1, 8, 20):
        for part in ("projections", "LM head"):
            assert re.search(rf"^\| {rows} \| {part} \| {cell}( \| {cell})+ \|$", out, re.M), out
    assert re.search(r"^streaming rate \(sum over \d+ MB\): [\d.]+ GB/s$", out, re.M), out
