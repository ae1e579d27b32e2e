"""A looping reasoner is stopped where it starts repeating itself, plain and streamed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.answer.repetition import LOOP_SPAN, cut_loop, loop_start, stop_loops
from gateway.config import GatewaySettings

from devkit.stub_upstream import StubUpstream
from tests.gateway.conftest import chat_body, gateway_client, unique_png

SENTENCE = "The image describes a 900×420 landscape image, which is a 2024031512345 image. "
LOOPING = "Your order is waiting for an address. " + SENTENCE * 4


def assert_stopped_at_the_loop(streamed: str) -> None:
    """The answer up to the loop, and less than a loop span of the repeat: those tokens were sent
    before the repeat was complete enough to see (a stream cannot take them back)."""
    head = "Your order is waiting for an address. " + SENTENCE
    assert streamed.startswith(head.strip())
    assert len(streamed[len(head):].split()) < LOOP_SPAN


def test_a_loop_starts_at_the_first_repeat_of_a_long_enough_span() -> None:
    assert loop_start(LOOPING) == len("Your order is waiting for an address. ") + len(SENTENCE)
    assert loop_start("银行卡验证失败 ERR_1003。请处理银行卡验证失败 ERR_1003。") is None  # a quote, twice
    assert loop_start("一二三四五六七八九十甲乙" * 2) == LOOP_SPAN  # Chinese characters are tokens
    assert loop_start("") is None


def test_a_completion_is_cut_before_its_loop_and_finishes_with_stop() -> None:
    message = {"role": "assistant", "content": LOOPING}
    completion = {"id": "x", "choices": [{"index": 0, "message": message, "finish_reason": "length"}]}
    cut = cut_loop(completion)
    kept = ("Your order is waiting for an address. " + SENTENCE).strip()
    assert cut["choices"][0]["message"]["content"] == kept
    assert cut["choices"][0]["finish_reason"] == "stop"
    whole = {"choices": [{"message": {"content": "Fine."}, "finish_reason": "stop"}]}
    assert cut_loop(whole) is whole


async def test_a_stream_ends_with_stop_where_the_loop_starts() -> None:
    async def chunks() -> AsyncIterator[dict[str, Any]]:
        for word in LOOPING.split(" "):
            yield {"choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
        yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}

    out = [chunk async for chunk in stop_loops(chunks(), said="")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out)
    assert_stopped_at_the_loop(text)
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


async def test_the_gateway_cuts_a_looping_reasoner_on_both_paths(
    make_settings: Callable[..., GatewaySettings], reasoner: StubUpstream
) -> None:
    reasoner.behaviour.answer = LOOPING.strip()
    async with gateway_client(make_settings()) as client:
        body = chat_body("Why has my order not shipped?", unique_png())
        plain = (await client.post("/v1/chat/completions", json=body)).json()
        streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
    expected = "Your order is waiting for an address. " + SENTENCE.strip()
    assert plain["choices"][0]["message"]["content"] == expected
    assert plain["choices"][0]["finish_reason"] == "stop"
    events = [json.loads(b[6:]) for b in streamed.text.split("\n\n") if b.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    assert_stopped_at_the_loop(text)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["flashsight"]["route"] == "cascade"
