"""The shared runtime as a real process (``python -m tests.support.fake_model_service``)."""

from __future__ import annotations

import json

import httpx
import pytest

from devkit.processes import ServiceProcess, ServiceStartError

pytestmark = pytest.mark.integration

FAKE_SERVICE = "tests.support.fake_model_service"


def test_streams_over_real_http_and_survives_restart(service_process) -> None:  # type: ignore[no-untyped-def]
    service: ServiceProcess = service_process(
        module=FAKE_SERVICE, port_env="FAKEMODEL_PORT", env={"FAKEMODEL_LOAD_MS": "200"}, startup_timeout=30
    )
    with httpx.Client(base_url=service.base_url, timeout=10) as client:
        body = {"messages": [{"role": "user", "content": "say:over the wire"}], "stream": True,
                "stream_options": {"include_usage": True}}
        with client.stream("POST", "/v1/chat/completions", json=body,
                           headers={"X-Request-ID": "it-1"}) as response:
            assert response.status_code == 200 and response.headers["x-request-id"] == "it-1"
            payloads = [line.removeprefix("data: ") for line in response.iter_lines() if line]
        assert payloads[-1] == "[DONE]"
        chunks = [json.loads(p) for p in payloads[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == "over the wire"
        assert chunks[-2]["confidence"] == 0.75 and chunks[-1]["usage"]["completion_tokens"] == 7
        assert "flashsight_model_batch_size_count 1.0" in client.get("/metrics").text

    first_pid = service.pid
    service.kill()
    assert not service.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(service.base_url + "/healthz", timeout=2)
    service.restart()
    assert service.pid != first_pid
    assert httpx.get(service.base_url + "/v1/models", timeout=5).json()["data"][0]["id"] == "fake-model"
    assert "request_id=it-1" in service.log_tail(200)  # one log across restarts, lines carry the id


def test_a_service_that_cannot_start_fails_with_its_log() -> None:
    process = ServiceProcess(module=FAKE_SERVICE, port_env="FAKEMODEL_PORT",
                             env={"FAKEMODEL_DEVICE": "gpu"}, startup_timeout=20)
    try:
        with pytest.raises(ServiceStartError, match=r"exited with code 1[\s\S]*auto, cpu, cuda or cuda:N"):
            process.start()
        assert not process.running
    finally:
        process.close()
