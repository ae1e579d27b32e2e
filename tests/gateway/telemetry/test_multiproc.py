"""GATEWAY_WORKERS > 1: every worker's series summed into one /metrics (real processes write them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gateway.telemetry import multiproc
from gateway.telemetry.metrics import CIRCUIT_STATES, CircuitStates

# what one worker process records: three answered requests, one of them in flight at exit
WORKER = """
from gateway.telemetry.metrics import GatewayMetrics
m = GatewayMetrics()
m.requests.labels(endpoint="/v1/chat/completions", route="direct", status="200").inc(3)
m.in_flight.inc()
"""


def test_render_sums_the_files_every_worker_process_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", WORKER], env={**os.environ, multiproc.ENV: str(tmp_path)}, check=True
        )
    monkeypatch.setenv(multiproc.ENV, str(tmp_path))
    circuits = CircuitStates()
    circuits.readers["vision"] = lambda: "open"
    text = multiproc.render(circuits).decode()
    chat_200 = (
        'flashsight_gateway_requests_total{endpoint="/v1/chat/completions",route="direct",status="200"}'
    )
    assert f"{chat_200} 6.0" in text
    # this process's own breakers, never summed
    assert f'flashsight_gateway_circuit_state{{upstream="vision"}} {float(CIRCUIT_STATES["open"])}' in text


def test_the_shared_directory_exists_only_while_the_workers_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(multiproc.ENV, raising=False)
    assert not multiproc.enabled()
    with multiproc.shared_metrics_dir() as path:
        assert os.environ[multiproc.ENV] == str(path) and path.is_dir() and multiproc.enabled()
        (path / "counter_123.db").write_bytes(b"x")
    assert not path.exists() and multiproc.ENV not in os.environ
