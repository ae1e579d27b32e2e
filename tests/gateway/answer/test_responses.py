"""gateway.answer.responses: every completion and chunk the gateway sends, and its flashsight object."""

from __future__ import annotations

import json
from typing import Any

from gateway.answer.responses import (
    MID_STREAM_FINISH_REASON,
    ChunkWriter,
    cached_completion,
    cached_stream,
    call_pieces,
    completion,
    holding_completion,
    holding_stream,
)
from gateway.answer.upstream_answers import Piece, read_completion
from gateway.schemas import DEGRADED_NOTICE, FlashSightMeta
from gateway.store.answer_cache import CachedAnswer


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


def test_a_plain_answer_keeps_the_upstreams_choice_id_and_adds_flashsight() -> None:
    answer = completion(read_completion(UPSTREAM), _meta())
    assert answer["choices"] == UPSTREAM["choices"] and answer["model"] == "ocr-lite"
    assert answer["id"] == "chatcmpl-up" and answer["object"] == "chat.completion"
    assert answer["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert answer["flashsight"]["matched_keyword"] == "why" and answer["flashsight"]["degraded"] is False


def test_a_degraded_answer_starts_with_the_notice() -> None:
    meta = _meta()
    meta.mark_degraded("reasoner_timeout")
    answer = completion(read_completion(UPSTREAM), meta)
    assert answer["choices"][0]["message"]["content"] == f"{DEGRADED_NOTICE}\n订单号是 1"
    assert answer["flashsight"]["degraded_reason"] == "reasoner_timeout"


def test_a_load_shed_answer_is_degraded_without_a_notice() -> None:
    meta = _meta()
    meta.mark_shed(["overload_max_tokens"])
    assert completion(read_completion(UPSTREAM), meta)["choices"][0]["message"]["content"] == "订单号是 1"


# A vLLM 0.32 answer to a tools request, with what it adds beside OpenAI's fields (issue 11).
VLLM_TOOL_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-vllm",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "/models/SmolLM2-135M-Instruct",
    "system_fingerprint": "vllm-0.32.0-cpu",
    "prompt_token_ids": [1, 2, 3],
    "kv_transfer_params": None,
    "ec_transfer_params": None,
    "metrics": {"queued_s": 0.0},
    "service_tier": None,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "reasoning": "the user wants the weather",
                "refusal": None,
                "annotations": None,
                "tool_calls": [
                    {
                        "id": "chatcmpl-tool-1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
            "stop_reason": None,
            "token_ids": [7, 8],
            "routed_experts": None,
        }
    ],
    "usage": {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 16},
        "completion_tokens_details": None,
    },
}


def test_a_vllm_answer_is_rebuilt_from_the_openai_fields_alone() -> None:
    answer = completion(read_completion(VLLM_TOOL_ANSWER), _meta())
    assert set(answer) == {"id", "object", "created", "model", "choices", "usage", "flashsight"}
    assert answer["model"] == "SmolLM2-135M-Instruct"  # the checkpoint's name, not its path
    (choice,) = answer["choices"]
    assert set(choice) == {"index", "message", "finish_reason"} and choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "the user wants the weather",  # vLLM's `reasoning`, OpenAI-compatible name
        "tool_calls": VLLM_TOOL_ANSWER["choices"][0]["message"]["tool_calls"],
    }
    assert answer["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 16},
    }


def test_flashsights_own_extensions_are_kept() -> None:
    answer = completion(read_completion({**UPSTREAM, "confidence": 0.8}), _meta())
    assert answer["confidence"] == 0.8


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
            usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
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


CACHED = CachedAnswer(
    content="因为未付款",
    finish_reason="length",
    model="smollm2",
    usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    models={"vision": "ocr-lite", "reasoner": "smollm2"},
)


def test_a_cache_hit_is_a_fresh_completion_from_the_original_model() -> None:
    meta = _meta()
    meta.record_answer_cache("hit", CACHED.models)
    first, second = cached_completion(meta, CACHED), cached_completion(meta, CACHED)
    assert first["id"] != second["id"] and first["object"] == "chat.completion"
    assert first["model"] == "smollm2"
    assert first["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "因为未付款"}, "finish_reason": "length"}
    ]
    assert first["usage"]["total_tokens"] == 5
    assert first["flashsight"]["answer_cache"] == "hit"
    assert first["flashsight"]["models"] == {"vision": "ocr-lite", "reasoner": "smollm2"}


async def test_a_cache_hit_streams_framed_like_a_live_answer() -> None:
    meta = _meta()
    meta.record_answer_cache("hit", CACHED.models)
    events = _events([e async for e in cached_stream(meta, CACHED, include_usage=True)])
    role, content, final, usage, done = events
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content["choices"][0]["delta"] == {"content": "因为未付款"}
    assert final["choices"][0]["finish_reason"] == "length"
    assert usage["usage"]["total_tokens"] == 5 and usage["flashsight"]["answer_cache"] == "hit"
    assert {e["model"] for e in (role, content, final, usage)} == {"smollm2"}
    assert len({e["id"] for e in (role, content, final, usage)}) == 1 and done == "[DONE]"


def test_a_tool_call_piece_is_a_delta_of_its_own() -> None:
    writer = ChunkWriter("glm")
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    head, args = (_events([writer.piece(Piece(tool_calls=[p]))])[0] for p in call_pieces(0, call))
    assert head["choices"][0]["delta"] == {
        "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
        ]
    }
    assert args["choices"][0]["delta"] == {
        "tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]
    }


CACHED_CALLS = CachedAnswer(
    content=None,
    finish_reason="tool_calls",
    model="smollm2",
    tool_calls=[
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ],
)


def test_a_cache_hit_replays_tool_calls_in_a_completion() -> None:
    answer = cached_completion(_meta(), CACHED_CALLS)
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": CACHED_CALLS.tool_calls,
    }


async def test_a_cache_hit_streams_each_call_as_a_head_and_its_arguments() -> None:
    events = _events([e async for e in cached_stream(_meta(), CACHED_CALLS, include_usage=False)])
    deltas = [e["choices"][0]["delta"] for e in events[1:-2]]
    assert [d["tool_calls"][0]["index"] for d in deltas] == [0, 0, 1, 1]
    assert deltas[0]["tool_calls"][0]["id"] == "call_a" and deltas[2]["tool_calls"][0]["id"] == "call_b"
    assert deltas[1]["tool_calls"][0]["function"] == {"arguments": '{"a": 1}'}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls" and "flashsight" in events[-2]
