"""GATEWAY_WORKERS=2: each worker builds the app from the environment; /metrics reports their totals."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from devkit.processes import ServiceProcess

pytestmark = pytest.mark.integration


def test_two_worker_processes_serve_chat_requests() -> None:
    stub = [sys.executable, "-m", "devkit.stub_upstream", "--port", "{port}", "--latency-ms", "0"]
    with (
        ServiceProcess([*stub, "--model", "ocr-lite"], name="stub-vision") as vision,
        ServiceProcess([*stub, "--model", "stub-reasoner"], name="stub-reasoner") as reasoner,
        ServiceProcess(
            module="gateway",
            port_env="GATEWAY_PORT",
            env={
                "GATEWAY_WORKERS": "2",
                "GATEWAY_VISION_URL": vision.base_url,
                "GATEWAY_REASONER_URL": reasoner.base_url,
                "REDIS_URL": "redis://127.0.0.1:1/0",  # unreachable on purpose: answers flow uncached
            },
        ) as gateway,
    ):
        body = {"model": "direct", "messages": [{"role": "user", "content": "订单号是多少?"}]}
        # a new connection each time, so the kernel spreads them over both workers
        for _ in range(REQUESTS):
            resp = httpx.post(f"{gateway.base_url}/v1/chat/completions", json=body, timeout=10)
            assert resp.status_code == 200, resp.text
            assert resp.json()["choices"][0]["message"]["content"] == "stub answer"
        # whichever worker answers a scrape, it reports both workers' totals
        for _ in range(10):
            samples = parse(httpx.get(f"{gateway.base_url}/metrics", timeout=10).text)
            assert samples[CHAT_200] == REQUESTS, "a scrape saw one worker's share"
            assert samples["flashsight_gateway_in_flight"] == 0
            assert samples['flashsight_gateway_circuit_state{upstream="vision"}'] == 0
        assert "2 workers" in gateway.log_tail(200)
        metrics_dir = next(
            line.split("=", 1)[1]
            for line in _environ_of(gateway)
            if line.startswith("PROMETHEUS_MULTIPROC_DIR=")
        )
        assert Path(metrics_dir).is_dir()
    assert not Path(metrics_dir).exists(), "the workers' metric files outlive the gateway"


REQUESTS = 12
CHAT_200 = 'flashsight_gateway_requests_total{endpoint="/v1/chat/completions",route="direct",status="200"}'


def parse(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, labels in the order rendered (multiprocess mode sorts them)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def _environ_of(process: ServiceProcess) -> list[str]:
    """The environment of the gateway's worker processes (children of the supervisor)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(children) >= 2, f"expected worker processes, found {children}"
    return Path(f"/proc/{children[0]}/environ").read_bytes().decode().split("\0")
