"""``python -m reasoner`` as a real process on its defaults: the embedded SmolLM2 from the model cache."""

from __future__ import annotations

import json

import httpx
import pytest
from reasoner.config import ReasonerSettings
from reasoner.embedded import lookup, prepare

from devkit.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_default_reasoner_answers_generate_and_streams_chat(service_process) -> None:  # type: ignore[no-untyped-def]
    prepare(lookup("smollm2"), ReasonerSettings().cache_dir)  # what `make models` does; instant when done
    service: ServiceProcess = service_process(
        module="reasoner", port_env="REASONER_PORT", startup_timeout=120, env={"REASONER_MAX_BATCH_SIZE": "4"}
    )
    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["smollm2-135m-instruct"]
        answer = client.post(
            "/generate", json={"prompt": "What is the capital of France?", "max_tokens": 24, "temperature": 0}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "Paris" in body["answer"] and body["model"] == "smollm2-135m-instruct"
        assert body["finish_reason"] == "stop" and body["usage"]["completion_tokens"] <= 24

        deltas: list[str] = []
        usage = None
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "Write one sentence about the sea."}],
                "max_tokens": 20,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line.removeprefix("data: "))
                    usage = chunk.get("usage") or usage
                    deltas += [c["delta"].get("content") or "" for c in chunk["choices"]]
        assert len([d for d in deltas if d]) > 3  # streamed piece by piece
        assert usage is not None and 1 <= usage["completion_tokens"] <= 20
    assert_start_up_logged_in_order(service.log_tail(400))


def assert_start_up_logged_in_order(log: str) -> None:
    """Load progress reaches the log, and the warm-up finishes before the service says ready."""
    phases = [
        "loading transformers backend",
        "loading weights from",
        "warming up",
        "warmed up in",
        "ready: serving",
    ]
    positions = [log.find(phase) for phase in phases]
    assert all(p >= 0 for p in positions), dict(zip(phases, positions, strict=True))
    assert positions == sorted(positions), dict(zip(phases, positions, strict=True))
