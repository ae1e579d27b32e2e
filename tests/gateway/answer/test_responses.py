"""gateway.answer.responses: every completion and chunk the gateway sends, and its flashsight object."""

from __future__ import annotations

import json
from typing import Any

from flashsight_common.schemas import Usage
from gateway.answer.responses import (
    MID_STREAM_FINISH_REASON,
    ChunkWriter,
    completion,
    holding_completion,
    holding_stream,
)
from gateway.schemas import DEGRADED_NOTICE, FlashSightMeta


def _meta(**kwargs: Any) -> FlashSightMeta:
    return FlashSightMeta(route="cascade", route_reason="keyword", matched_keyword="why", **kwargs)


def _events(raw: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for event in raw:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        body = event[len(b"data: ") : -2].decode()
        out.append(body if body == "[DONE]" else json.loads(body))
    return out


UPSTREAM = {
    "id": "chatcmpl-up",
    "object": "chat.completion",
    "model": "ocr-lite",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "订单号是 1"}, "finish_reason": "stop"}
    ],
}


def test_a_plain_answer_is_the_upstreams_with_flashsight_added() -> None:
    answer = completion(UPSTREAM, _meta())
    assert answer["choices"] == UPSTREAM["choices"] and answer["model"] == "ocr-lite"
    assert answer["flashsight"]["matched_keyword"] == "why" and answer["flashsight"]["degraded"] is False


def test_a_degraded_answer_starts_with_the_notice_and_leaves_the_upstream_untouched() -> None:
    meta = _meta()
    meta.mark_degraded("reasoner_timeout")
    answer = completion(UPSTREAM, meta)
    assert answer["choices"][0]["message"]["content"] == f"{DEGRADED_NOTICE}\n订单号是 1"
    assert answer["flashsight"]["degraded_reason"] == "reasoner_timeout"
    assert UPSTREAM["choices"][0]["message"]["content"] == "订单号是 1"  # not edited in place


def test_a_load_shed_answer_is_degraded_without_a_notice() -> None:
    meta = _meta()
    meta.mark_shed(["overload_max_tokens"])
    assert completion(UPSTREAM, meta)["choices"][0]["message"]["content"] == "订单号是 1"


def test_the_holding_reply_is_a_whole_completion_naming_the_requested_model() -> None:
    answer = holding_completion("auto", _meta(), "busy")
    assert answer["object"] == "chat.completion" and answer["model"] == "auto"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "busy"}
    assert answer["usage"]["total_tokens"] == 0 and "flashsight" in answer


async def test_the_holding_stream_is_framed_and_releases_its_slot() -> None:
    released: list[bool] = []
    raw = [
        event
        async for event in holding_stream("auto", _meta(), "busy", on_done=lambda: released.append(True))
    ]
    events = _events(raw)
    assert events[-1] == "[DONE]" and released == [True]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[1]["choices"][0]["delta"] == {"content": "busy"}
    assert events[2]["choices"][0]["finish_reason"] == "stop" and "flashsight" in events[2]
    assert len({e["id"] for e in events[:-1]}) == 1


def test_stream_chunks_share_one_id_and_the_last_carries_flashsight() -> None:
    writer = ChunkWriter("smollm2")
    raw = [writer.role(), writer.content("a", None), writer.notice_last()]
    raw += writer.closing(
        _meta(), finish_reason=MID_STREAM_FINISH_REASON, extra={}, usage=None, include_usage=False
    )
    events = _events(raw)
    assert {e["id"] for e in events[:-1]} == {writer.id} and events[-1] == "[DONE]"
    assert events[2]["choices"][0]["delta"]["content"] == f"\n\n{DEGRADED_NOTICE}"
    assert events[3]["choices"][0]["finish_reason"] == "degraded"
    assert events[3]["flashsight"]["matched_keyword"] == "why"
    assert "flashsight" not in events[0] and "finish_reason" not in events[0]["choices"][0]


def test_usage_gets_its_own_chunk_when_asked_for() -> None:
    writer = ChunkWriter("ocr-lite")
    events = _events(
        writer.closing(
            _meta(),
            finish_reason="stop",
            extra={"confidence": 0.9},
            usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
            include_usage=True,
        )
    )
    final, usage, done = events
    assert final["confidence"] == 0.9 and "flashsight" not in final
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 5 and "flashsight" in usage
    assert done == "[DONE]"


def test_a_failed_stream_ends_with_the_error_body_and_flashsight() -> None:
    error = {"error": {"message": "vision died", "type": "service_unavailable", "param": None, "code": "x"}}
    body, done = _events(ChunkWriter("ocr-lite").failed(_meta(), error))
    assert body["error"]["message"] == "vision died" and "flashsight" in body and done == "[DONE]"
