"""``bench/engine_gpu.py --quick --profile`` runs on the CPU and prints its tables (speed not asserted).

The quick run drives the real reasoner process with ``REASONER_STATIC_KV=on``, so the static
KV cache (eager on the CPU) serves real streamed HTTP requests here too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_quick_mode_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "engine_gpu.json"
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "engine_gpu.py"), "--quick", "--profile", "--json", out],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for expected in (
        "| load | tokens/s (all requests) | TTFT p50 / p95 |",
        "| 1 stream (2 requests) | ",
        "| 2 concurrent (2 requests) | ",
        "| plain `model.generate`, batch 1 / batch 8 | ",
        "| memory-bandwidth limit at batch 1 (",
        "static KV cache: 2 slots × ",
        "decode step: fused",  # the written-out step serves on the CPU (modelserver.fused_step)
        "| transformers (transformers) | no | ",  # --profile: the steps side by side
        "| fused (fused) | no | ",
    ):
        assert expected in run.stdout, f"no {expected!r} in:\n{run.stdout}\n{run.stderr}"
    report = json.loads(out.read_text())
    # Every request ran to max_tokens: the lm_head trick keeps random output printable, EOS-free.
    assert [p["tokens"] for p in report["phases"]] == [16, 16]
    assert all(p["ttft_p50_ms"] > 0 for p in report["phases"])
