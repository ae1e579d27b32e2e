"""The whole stack as a user's app sees it: real Redis, vision (ocr-lite), reasoner (SmolLM2), gateway.

Every service is a real ``python -m`` process on a free port; the images are generated
screenshots. Destructive tests (killing a service) restore the stack afterwards.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from devkit.screens import as_data_url, order_screenshot
from devkit.stack import Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTICE = "当前仅提供图像描述"
CASCADE_QUESTION = "Why has this order not shipped yet? What should I do?"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # These tests follow the cascade through the real SmolLM2 on Chinese screenshots, so the
    # gateway is told it reads Chinese; the default (en) gate has its own stack in
    # test_grounded_answers.py.
    with running_stack(
        gateway_env={"GATEWAY_REASONER_LANGUAGES": "zh,en"}, reasoner_env={"REASONER_MAX_BATCH_SIZE": "8"}
    ) as running:
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    stack.ensure_running()
    with httpx.Client(base_url=stack.url, timeout=120) as http:
        yield http


def fresh_order() -> tuple[str, str]:
    """A unique order number and its screenshot as a data URL (so caches start cold)."""
    order_no = str(uuid.uuid4().int)[:16]
    return order_no, as_data_url(order_screenshot(order_no=order_no))


def chat(image_url: str, question: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": question},
                ],
            }
        ],
        "max_tokens": 48,
        "temperature": 0,
        **extra,
    }


def read_stream(response: httpx.Response) -> tuple[list[dict[str, Any]], bool]:
    """The JSON chunks of an SSE response and whether it ended with ``[DONE]``."""
    chunks: list[dict[str, Any]] = []
    done = False
    for line in response.iter_lines():
        if line == "data: [DONE]":
            done = True
        elif line.startswith("data: "):
            chunks.append(json.loads(line.removeprefix("data: ")))
    return chunks, done


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def last_meta(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c["flashsight"] for c in reversed(chunks) if "flashsight" in c)


# --- the happy paths --------------------------------------------------------------------------


def test_direct_route_reads_the_order_number(client: httpx.Client) -> None:
    order_no, image = fresh_order()
    response = client.post("/v1/chat/completions", json=chat(image, "订单号是多少?"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert order_no in body["choices"][0]["message"]["content"]
    assert body["model"] == "ocr-lite"  # the model that really answered
    meta = body["flashsight"]
    assert meta["route"] == "direct" and meta["degraded"] is False
    assert meta["models"]["vision"] == "ocr-lite" and meta["models"]["reasoner"] is None
    assert response.headers["X-FlashSight-Route"] == "direct"
    assert response.headers["X-Request-ID"]


def test_cascade_answers_through_the_reasoner_and_caches_the_caption(
    stack: Stack, client: httpx.Client
) -> None:
    _, image = fresh_order()
    first = client.post("/v1/chat/completions", json=chat(image, CASCADE_QUESTION))
    assert first.status_code == 200, first.text
    body = first.json()
    meta = body["flashsight"]
    assert meta["route"] == "cascade" and meta["matched_keyword"] in ("why", "should")
    assert meta["caption_cache"] == "miss" and meta["degraded"] is False
    assert body["model"] == "smollm2-135m-instruct" == meta["models"]["reasoner"]
    assert meta["models"]["vision"] == "ocr-lite"
    assert body["choices"][0]["message"]["content"].strip()
    assert body["usage"]["completion_tokens"] >= 1

    # The caption is in Redis under image sha256 + vision model + caption-prompt version.
    (sha,) = meta["images"]
    with stack.redis.client() as redis_client:
        keys = list(redis_client.scan_iter(match=f"flashsight:caption:v*:ocr-lite:{sha}"))
        assert len(keys) == 1 and redis_client.ttl(keys[0]) > 0

    second = client.post("/v1/chat/completions", json=chat(image, CASCADE_QUESTION))
    assert second.status_code == 200, second.text
    assert second.json()["flashsight"]["caption_cache"] == "hit"
    assert second.headers["X-FlashSight-Cache"] == "hit"
    assert second.json()["flashsight"]["timings_ms"]["caption"] < meta["timings_ms"]["caption"]


def test_multi_turn_follow_up_about_the_same_image(client: httpx.Client) -> None:
    order_no, image = fresh_order()
    first = client.post("/v1/chat/completions", json=chat(image, "订单状态是什么?")).json()
    body = chat(image, "订单状态是什么?")
    body["messages"] += [
        {"role": "assistant", "content": first["choices"][0]["message"]["content"]},
        {"role": "user", "content": "订单号是多少?"},
    ]
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert order_no in response.json()["choices"][0]["message"]["content"]


def test_streaming_direct_answer_arrives_in_chunks(client: httpx.Client) -> None:
    order_no, image = fresh_order()
    body = chat(image, "订单号是多少?", stream=True, stream_options={"include_usage": True})
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks, done = read_stream(response)
    assert done
    assert order_no in streamed_text(chunks)
    assert len([c for c in chunks if c.get("choices") and c["choices"][0]["delta"].get("content")]) > 1
    assert any(c.get("usage") for c in chunks)
    assert last_meta(chunks)["route"] == "direct"


def test_seed_endpoints_use_the_same_pipeline(client: httpx.Client) -> None:
    order_no, image = fresh_order()
    png = order_screenshot(order_no=order_no)

    infer = client.post("/infer", json={"image_url": image, "prompt": "订单号是多少?"})
    assert infer.status_code == 200, infer.text
    assert order_no in infer.json()["text"] and 0 < infer.json()["confidence"] <= 1

    caption = client.post("/caption", files={"file": ("order.png", png, "image/png")})
    assert caption.status_code == 200, caption.text
    assert order_no in caption.json()["caption"]

    chat_seed = client.post(
        "/chat", files={"image": ("o.png", png, "image/png")}, data={"text": "订单号是多少?"}
    )
    assert chat_seed.status_code == 200, chat_seed.text
    assert order_no in chat_seed.json()["answer"]

    completion = client.post(
        "/v1/multimodal/completion",
        files={"image": ("o.png", png, "image/png")},
        data={"prompt": "订单号是多少?"},
    )
    assert completion.status_code == 200, completion.text
    assert order_no in completion.json()["text"]


# --- the official OpenAI SDK, unchanged ------------------------------------------------------


def test_openai_sdk_sync_and_streaming(stack: Stack) -> None:
    stack.ensure_running()
    order_no, image = fresh_order()
    sdk = openai.OpenAI(base_url=stack.url + "/v1", api_key="not-needed", max_retries=0, timeout=120)
    messages: Any = chat(image, "订单号是多少?")["messages"]
    completion = sdk.chat.completions.create(model="glm-4.6v-flash-web", messages=messages, max_tokens=64)
    assert order_no in (completion.choices[0].message.content or "")
    assert completion.model == "ocr-lite"
    assert (completion.model_extra or {})["flashsight"]["route"] == "direct"  # as the README shows

    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in sdk.chat.completions.create(model="direct", messages=messages, stream=True)
        if chunk.choices
    ]
    assert order_no in "".join(pieces)
    assert [m.id for m in sdk.models.list()] == ["auto", "direct", "cascade", "glm-4.6v-flash-web"]

    with pytest.raises(openai.NotFoundError) as not_found:
        sdk.chat.completions.create(model="gpt-4o", messages=messages)
    assert not_found.value.code == "model_not_found"


async def test_openai_sdk_async(stack: Stack) -> None:
    stack.ensure_running()
    order_no, image = fresh_order()
    sdk = openai.AsyncOpenAI(base_url=stack.url + "/v1", api_key="not-needed", max_retries=0, timeout=120)
    messages: Any = chat(image, "订单号是多少?")["messages"]
    completion = await sdk.chat.completions.create(model="auto", messages=messages)
    assert order_no in (completion.choices[0].message.content or "")
    stream = await sdk.chat.completions.create(model="auto", messages=messages, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert order_no in text
    await sdk.close()


# --- degradation ---------------------------------------------------------------------------------


def test_reasoner_killed_gives_a_flagged_vision_only_answer_then_recovers(
    stack: Stack, client: httpx.Client
) -> None:
    _, image = fresh_order()
    stack.reasoner.kill()

    response = client.post("/v1/chat/completions", json=chat(image, CASCADE_QUESTION))
    assert response.status_code == 200, response.text
    body = response.json()
    meta = body["flashsight"]
    assert meta["route"] == "cascade" and meta["degraded"] is True
    assert meta["degraded_reason"] in ("reasoner_unavailable", "reasoner_circuit_open")
    assert NOTICE in meta["notice"]
    assert body["choices"][0]["message"]["content"].startswith(NOTICE)
    assert body["model"] == "ocr-lite" and meta["models"]["reasoner"] is None
    assert response.headers["X-FlashSight-Degraded"].startswith("reasoner_")

    with client.stream(
        "POST", "/v1/chat/completions", json=chat(image, CASCADE_QUESTION, stream=True)
    ) as streamed:
        assert streamed.status_code == 200
        chunks, done = read_stream(streamed)
    assert done, "a degraded stream still ends with [DONE]"
    assert streamed_text(chunks).startswith(NOTICE)
    assert last_meta(chunks)["degraded"] is True

    # Still serving, so still ready (a balancer keeps it), but saying it is degraded.
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"

    # Back up: cascade answers from the reasoner again within seconds of its return.
    stack.reasoner.start()
    deadline = time.monotonic() + 15
    while True:
        meta = client.post("/v1/chat/completions", json=chat(image, CASCADE_QUESTION)).json()["flashsight"]
        if not meta["degraded"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert meta["degraded"] is False and meta["models"]["reasoner"] == "smollm2-135m-instruct"


def test_redis_down_answers_still_flow_uncached(stack: Stack, client: httpx.Client) -> None:
    order_no, image = fresh_order()
    stack.redis.kill()
    direct = client.post("/v1/chat/completions", json=chat(image, "订单号是多少?"))
    assert direct.status_code == 200 and order_no in direct.json()["choices"][0]["message"]["content"]
    cascade = client.post("/v1/chat/completions", json=chat(image, CASCADE_QUESTION))
    assert cascade.status_code == 200, cascade.text
    assert cascade.json()["flashsight"]["caption_cache"] == "unavailable"
    assert cascade.json()["flashsight"]["degraded"] is False
    ready = client.get("/readyz")
    assert ready.status_code == 200 and "redis" in ready.text


def test_vision_down_is_a_503_with_retry_after(stack: Stack, client: httpx.Client) -> None:
    _, image = fresh_order()
    stack.vision.kill()
    response = client.post("/v1/chat/completions", json=chat(image, "订单号是多少?"))
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert "vision" in error["message"].lower() and error["type"]
    assert client.get("/readyz").status_code == 503


def test_sixteen_live_streams_survive_the_reasoner_dying(stack: Stack, client: httpx.Client) -> None:
    """The real SmolLM2 reasoner killed while 16 cascade streams run: none fails, each affected one
    is flagged degraded, and cascade answers come back within 10 s of the process returning."""
    _, image = fresh_order()
    warm = client.post("/v1/chat/completions", json=chat(image, CASCADE_QUESTION, max_tokens=4))
    assert warm.status_code == 200  # the caption is cached: the streams go straight to the reasoner

    def one_stream() -> tuple[int, list[dict[str, Any]], bool, str]:
        body = chat(image, CASCADE_QUESTION, stream=True, max_tokens=96, temperature=0.7)
        with (
            httpx.Client(base_url=stack.url, timeout=120) as own,
            own.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            if response.status_code != 200:  # the refusal's body says which stage refused, and why
                return response.status_code, [], False, response.read().decode()
            chunks, done = read_stream(response)
            return response.status_code, chunks, done, ""

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(one_stream) for _ in range(16)]
        time.sleep(1.5)  # let the streams get going
        stack.reasoner.kill()
        results = [future.result(timeout=180) for future in futures]

    for status, chunks, done, refusal in results:
        assert status == 200 and done, f"every request answered, every stream ended with [DONE]: {refusal}"
        meta = last_meta(chunks)
        finish = next(c["choices"][0]["finish_reason"] for c in reversed(chunks) if c.get("choices"))
        if meta["degraded"]:
            assert meta["degraded_reason"].startswith("reasoner_") and NOTICE in streamed_text(chunks)
        else:  # finished before the kill: a whole reasoner answer
            assert finish in ("stop", "length") and meta["models"]["reasoner"] == "smollm2-135m-instruct"
    assert sum(last_meta(chunks)["degraded"] for _, chunks, _, _ in results) >= 1

    stack.reasoner.start()  # returns once /readyz answers
    back = time.monotonic()
    while True:
        meta = client.post("/v1/chat/completions", json=chat(image, CASCADE_QUESTION, max_tokens=8)).json()[
            "flashsight"
        ]
        if not meta["degraded"]:
            break
        assert time.monotonic() - back < 10, "cascade answers return within 10 s of the reasoner's return"
        time.sleep(0.25)
