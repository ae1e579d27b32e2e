"""``bench/reasoner_batching.py --quick`` runs end to end and prints every figure (speed never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPECTED_LINES = (
    "reasoner: python -m reasoner",
    "sequential: 2 requests, ",
    "concurrent: 2 requests, ",
    "ratio: ",
    "ttft under concurrent load: p50 ",
    "batches started for the concurrent phase: ",
)


def test_quick_mode_prints_the_figures() -> None:
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "reasoner_batching.py"), "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    for prefix in EXPECTED_LINES:
        assert any(line.startswith(prefix) for line in lines), f"no {prefix!r} line in:\n{run.stdout}"
    # Both phases generated tokens (2 requests × 8 tokens each, unless EOS came first).
    assert "tok/s aggregate" in run.stdout and " 0 tokens in" not in run.stdout
