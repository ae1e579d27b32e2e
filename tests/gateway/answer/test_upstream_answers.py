"""gateway.answer.upstream_answers: the OpenAI fields of an upstream answer, nothing an engine adds."""

from __future__ import annotations

from typing import Any

import pytest
from gateway.answer.upstream_answers import (
    ToolCallAssembler,
    read_chunk,
    read_completion,
    read_usage,
    readable_model,
)


@pytest.mark.parametrize(
    ("reported", "readable"),
    [
        ("/models/glm-4-9b-chat-hf", "glm-4-9b-chat-hf"),
        ("/root/.cache/models/SmolLM2-135M-Instruct/", "SmolLM2-135M-Instruct"),
        ("./checkpoints/tiny", "tiny"),
        ("~/models/glm", "glm"),
        ("C:\\models\\glm", "glm"),
        ("zai-org/glm-4-9b-chat-hf", "zai-org/glm-4-9b-chat-hf"),  # a hub id is a name, not a path
        ("ocr-lite", "ocr-lite"),
        ("", None),
        (None, None),
    ],
)
def test_a_path_reported_as_the_model_becomes_its_last_part(reported: Any, readable: str | None) -> None:
    assert readable_model(reported) == readable


def test_usage_keeps_the_counts_and_their_details() -> None:
    raw = {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 3, "note": "x"},
        "completion_tokens_details": None,
        "engine_extra": 1,
    }
    assert read_usage(raw) == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    assert read_usage(None) is None


def test_a_completion_keeps_content_calls_refusal_and_finish() -> None:
    answer = read_completion(
        {
            "id": "chatcmpl-1",
            "created": 5,
            "model": "m",
            "system_fingerprint": "x",
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "I will not.",
                        "refusal": "no",
                        "reasoning_content": "hmm",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}],
                    },
                    "finish_reason": "tool_calls",
                    "stop_reason": 42,
                }
            ],
            "confidence": 0.5,
        }
    )
    assert (answer.id, answer.created, answer.model) == ("chatcmpl-1", 5, "m")
    assert (answer.content, answer.refusal, answer.reasoning_content) == ("I will not.", "no", "hmm")
    # a server that sends the arguments as an object gets them as the JSON string OpenAI sends
    assert answer.tool_calls == [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    assert answer.finish_reason == "tool_calls" and answer.extensions == {"confidence": 0.5}


def test_a_vllm_chunk_gives_its_reasoning_and_call_pieces_only() -> None:
    piece = read_chunk(
        {
            "id": "chatcmpl-1",
            "model": "/models/x",
            "system_fingerprint": "vllm-0.32.0-cpu",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "reasoning": "thinking",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "chatcmpl-tool-1",
                                "type": "function",
                                "function": {"name": "f"},
                            }
                        ],
                    },
                    "logprobs": None,
                    "finish_reason": None,
                    "token_ids": [1],
                }
            ],
        }
    )
    assert piece.reasoning_content == "thinking" and piece.content is None
    assert piece.tool_calls == [
        {"index": 0, "id": "chatcmpl-tool-1", "type": "function", "function": {"name": "f"}}
    ]
    assert piece.says_something and piece.finish_reason is None


def test_the_finish_chunk_carries_the_extensions_and_usage() -> None:
    piece = read_chunk(
        {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "structured_output": {"status": "complete"},
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
    assert piece.finish_reason == "stop" and piece.extensions == {"structured_output": {"status": "complete"}}
    assert piece.usage == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    assert not piece.says_something
    usage_only = read_chunk({"choices": [], "usage": {"prompt_tokens": 3}})
    assert usage_only.usage == {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 0}


def test_streamed_pieces_assemble_into_whole_calls() -> None:
    calls = ToolCallAssembler()
    assert calls.calls() is None
    calls.add([{"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": ""}}])
    calls.add([{"index": 0, "id": "a", "type": "function", "function": {"name": "f"}}])
    calls.add(
        [{"index": 0, "function": {"arguments": '{"x":'}}, {"index": 1, "function": {"arguments": "{}"}}]
    )
    calls.add([{"index": 0, "function": {"arguments": " 1}"}}])
    assert calls.calls() == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
