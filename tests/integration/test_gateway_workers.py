"""GATEWAY_WORKERS=2: uvicorn's worker processes each build the app from the environment and answer."""

from __future__ import annotations

import sys

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
        with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
            for _ in range(8):
                resp = client.post("/v1/chat/completions", json=body)
                assert resp.status_code == 200, resp.text
                assert resp.json()["choices"][0]["message"]["content"] == "stub answer"
        assert "2 workers" in gateway.log_tail(200)
