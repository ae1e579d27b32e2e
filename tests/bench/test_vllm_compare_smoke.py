"""``bench/vllm_cpu_compare.py --quick`` runs end to end; with ``--versus-env``, two reasoners side by side.

Speed is never asserted: the figures live in docs/performance.md. What must hold is that
every row, the batching ratios and the greedy-output check are printed, and that a
``--versus-env`` run compares two reasoners (the before/after of a setting) side by side.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def bench(*extra: str) -> str:
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "vllm_cpu_compare.py"), "--quick", *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_a_settings_before_and_after_run_side_by_side() -> None:
    out = bench("--versus-env", "REASONER_CPU_LINEAR=false", "--versus-env", "REASONER_MAX_BATCH_SIZE=2")
    assert "versus: python -m reasoner with" in out and "'REASONER_CPU_LINEAR': 'false'" in out
    assert "| FlashSight / versus |" in out
    rows = [line for line in out.splitlines() if line.startswith(("| short (8)", "| long (16)"))]
    assert len(rows) == 8 and all(line.rstrip().endswith("x** |") for line in rows)
    assert out.count("FlashSight batching, ") == 4
    assert "RSS versus: " in out
    # greedy decoding with and without the CPU linear layout: the same answers
    assert "greedy outputs: byte-identical across FlashSight and versus" in out
