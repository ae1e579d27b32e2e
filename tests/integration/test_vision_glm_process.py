"""``python -m vision`` with the production ``glm`` backend on the tiny GLM-4.6V checkpoint, as a process."""

from __future__ import annotations

import base64
import io
import itertools
import json
import time

import httpx
import pytest
from PIL import Image

from devkit.processes import ServiceProcess
from tests.support.tiny_models import GLM46V_TINY, tiny_model_path

pytestmark = pytest.mark.integration


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_chat(*, stream: bool, max_tokens: int = 256) -> dict:
    image = Image.effect_noise((160, 120), 60).convert("RGB")
    return {
        "model": GLM46V_TINY,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": png_data_url(image)}},
                    {"type": "text", "text": "What does this picture show?"},
                ],
            }
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    }


def test_glm_backend_streams_an_image_answer_over_http(service_process) -> None:  # type: ignore[no-untyped-def]
    model_path = tiny_model_path(GLM46V_TINY)
    service: ServiceProcess = service_process(
        module="vision",
        port_env="VISION_PORT",
        startup_timeout=120,
        env={"VISION_BACKEND": "glm", "VISION_MODEL": str(model_path), "VISION_DEVICE": "cpu"},
    )
    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [GLM46V_TINY]

        arrivals: list[float] = []
        chunks: list[dict] = []
        started = time.perf_counter()
        with client.stream("POST", "/v1/chat/completions", json=image_chat(stream=True)) as response:
            assert response.status_code == 200, response.read()
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line.removeprefix("data: "))
                chunks.append(chunk)
                delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
                if delta.get("content") or delta.get("reasoning_content"):
                    arrivals.append(time.perf_counter())

        assert {chunk["model"] for chunk in chunks} == {GLM46V_TINY}
        assert len(arrivals) >= 4, f"expected several text chunks, got {len(arrivals)}"
        # Streamed as decoded (the tiny model makes ~1 token/ms here, so 256 tokens take a
        # few hundred ms): text arrives in many separate bursts spread over most of the
        # request, not in one burst at the end.
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert sum(gap > 0.0005 for gap in gaps) >= 5, gaps
        assert arrivals[-1] - arrivals[0] > 0.4 * (arrivals[-1] - started)
        usage = chunks[-1]["usage"]
        assert (
            usage["completion_tokens"] >= len(arrivals) and usage["prompt_tokens"] > 24
        )  # 160×120 px → 24 image tokens

        answer = client.post("/v1/chat/completions", json=image_chat(stream=False, max_tokens=8)).json()
        assert answer["model"] == GLM46V_TINY
        assert answer["usage"]["completion_tokens"] <= 8
        assert "<think>" not in (answer["choices"][0]["message"]["content"] or "")
    assert "glm: loaded glm46v-tiny" in service.log_tail(400)
