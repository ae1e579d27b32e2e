"""The production vision backend behind the gateway: tiny GLM-4.6V answers image requests end to end.

Real processes: private Redis, ``python -m vision`` with ``VISION_BACKEND=glm`` on the tiny
random-weight GLM-4.6V checkpoint, ``python -m reasoner`` on the tiny GLM-4 chat checkpoint,
and the gateway in front. The checkpoints are built by ``scripts/build_tiny_models.py``
(idempotent, a few seconds) before the stack starts.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from devkit.screens import as_data_url, photo_like_image
from devkit.stack import Stack, running_stack
from tests.support.tiny_models import GLM4_CHAT_TINY, GLM46V_TINY, tiny_model_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    vision_model = tiny_model_path(GLM46V_TINY)
    reasoner_model = tiny_model_path(GLM4_CHAT_TINY)
    with running_stack(
        vision_env={"VISION_BACKEND": "glm", "VISION_MODEL": str(vision_model), "VISION_DEVICE": "cpu"},
        reasoner_env={"REASONER_MODEL": str(reasoner_model), "REASONER_DEVICE": "cpu"},
    ) as running:
        yield running


@pytest.fixture
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=120) as http:
        yield http


def image_question(*, stream: bool, max_tokens: int, **extra: Any) -> dict[str, Any]:
    extra.setdefault("temperature", 0)
    return {
        "model": "auto",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": as_data_url(photo_like_image((320, 240)))}},
                    {"type": "text", "text": "What does this picture show?"},
                ],
            }
        ],
        "max_tokens": max_tokens,
        "stream": stream,
        "route": "direct",
        **extra,
    }


def test_glm_answers_an_image_request_through_the_gateway(gateway: httpx.Client) -> None:
    response = gateway.post("/v1/chat/completions", json=image_question(stream=False, max_tokens=16))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == GLM46V_TINY  # the model that really answered, not a placeholder
    assert body["flashsight"]["route"] == "direct" and body["flashsight"]["degraded"] is False
    assert body["flashsight"]["models"]["vision"] == GLM46V_TINY
    assert 1 <= body["usage"]["completion_tokens"] <= 16
    assert body["usage"]["prompt_tokens"] > 50  # the image's tokens reached the model
    assert "<think>" not in (body["choices"][0]["message"]["content"] or "")


def long_answer_seed(gateway: httpx.Client, *, max_tokens: int) -> int:
    """A seed whose sampled answer runs to ``max_tokens``.

    Random weights emit EOS at random (greedy on this image stops after 3 tokens); a seeded
    sample is reproducible, so a seed that reaches the limit once does so when streamed.
    """
    for seed in range(32):
        payload = image_question(stream=False, max_tokens=max_tokens, temperature=1.0, seed=seed)
        body = gateway.post("/v1/chat/completions", json=payload).json()
        if body["choices"][0]["finish_reason"] == "length":
            return seed
    pytest.fail("no seed in 0..31 made the tiny model write to max_tokens")


def test_glm_stream_through_the_gateway_arrives_in_chunks_spread_over_time(gateway: httpx.Client) -> None:
    seed = long_answer_seed(gateway, max_tokens=384)
    arrivals: list[float] = []
    started = time.perf_counter()
    payload = image_question(stream=True, max_tokens=384, temperature=1.0, seed=seed)
    with gateway.stream("POST", "/v1/chat/completions", json=payload) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content"):
                    arrivals.append(time.perf_counter())
    finished = time.perf_counter()
    assert len(arrivals) >= 8, f"expected several text chunks, got {len(arrivals)}"
    # Decoded text is forwarded as it is produced: many separate arrivals over most of the
    # request, not one burst at the end (the tiny model makes ~1 token per ms here).
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert sum(gap > 0.001 for gap in gaps) >= 5, gaps
    spread, total = arrivals[-1] - arrivals[0], finished - started
    assert spread > 0.3 * total, (spread, total)


def test_glm_json_object_through_the_gateway_parses_even_from_random_weights(gateway: httpx.Client) -> None:
    payload = image_question(stream=False, max_tokens=48, response_format={"type": "json_object"})
    response = gateway.post("/v1/chat/completions", json=payload)
    assert response.status_code == 200, response.text
    assert isinstance(json.loads(response.json()["choices"][0]["message"]["content"]), dict)


CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "utc": {"type": "boolean"}},
    "required": ["city", "utc"],
    "additionalProperties": False,
}
CITY_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": CITY_SCHEMA}}


@pytest.mark.parametrize("stream", [False, True])
def test_glm_vision_calls_tools_about_the_image_on_the_direct_route(
    gateway: httpx.Client, stream: bool
) -> None:
    # GLM-4.6V calls tools (its /readyz says calls_tools), so a tools request with an image goes
    # to it directly: the model that sees the image calls, no keyword or caption in between.
    payload = image_question(stream=stream, max_tokens=256, tools=[CITY_TOOL], tool_choice="required", seed=1)
    del payload["route"]
    response = gateway.post("/v1/chat/completions", json=payload)
    assert response.status_code == 200, response.text
    if stream:
        chunks = [
            json.loads(line.removeprefix("data: "))
            for line in response.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
        pieces = [p for c in chunks for ch in c["choices"] for p in ch["delta"].get("tool_calls") or ()]
        finish = next(ch["finish_reason"] for c in chunks for ch in c["choices"] if ch.get("finish_reason"))
        arguments = "".join(
            (p.get("function") or {}).get("arguments") or "" for p in pieces if p["index"] == 0
        )
        name, meta = pieces[0]["function"]["name"], chunks[-1]["flashsight"]
    else:
        body = response.json()
        (call, *_) = body["choices"][0]["message"]["tool_calls"]
        finish, name, arguments = (
            body["choices"][0]["finish_reason"],
            call["function"]["name"],
            call["function"]["arguments"],
        )
        meta = body["flashsight"]
    assert (meta["route"], meta["route_reason"]) == ("direct", "tools")
    assert meta["models"]["vision"] == GLM46V_TINY and meta["models"]["reasoner"] is None
    assert finish == "tool_calls" and name == "get_time"
    jsonschema.validate(json.loads(arguments), CITY_SCHEMA)  # random weights, valid by the grammar
