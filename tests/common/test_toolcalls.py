"""Tool calling on the wire: definitions, tool_choice, calls in history, tool results, deltas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flashsight_common.errors import describe_validation_errors
from flashsight_common.schemas import ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta
from flashsight_common.toolcalls import FunctionCallDelta, ToolCallDelta
from pydantic import ValidationError

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK = {"role": "user", "content": "Weather in Paris?"}


def call(call_id: str = "call_1", arguments: str = '{"city": "Paris"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}


def refusal(body: dict[str, Any]) -> tuple[str, str | None]:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(body)
    return describe_validation_errors(caught.value.errors())


def test_a_full_tool_exchange_is_accepted() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "messages": [
                ASK,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("a"), call("b", '{"city": "Rome"}')],
                },
                {"role": "tool", "tool_call_id": "a", "content": "18 C, sunny"},
                {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "22 C"}]},
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        }
    )
    assert request.calls_tools()
    assert request.messages[1].tool_calls is not None
    assert request.messages[1].tool_calls[1].function.parsed_arguments() == {"city": "Rome"}


@pytest.mark.parametrize("choice", ["auto", "required", "none"])
def test_tool_choice_modes(choice: str) -> None:
    request = ChatCompletionRequest.model_validate(
        {"messages": [ASK], "tools": [WEATHER], "tool_choice": choice}
    )
    assert request.calls_tools() is (choice != "none")


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"tool_choice": "auto"}, "tool_choice", "only allowed when tools are given"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls", "only allowed when tools are given"),
        ({"tools": []}, "tools", "at least one function"),
        ({"tools": [WEATHER, WEATHER]}, "tools", "unique"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice", "'auto', 'none', 'required'"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
            "not in tools (get_weather)",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
            "tools.0.function.name",
            "pattern",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
            "tools.0.function.parameters",
            "type 'object'",
        ),
        ({"tools": [{"type": "retrieval"}]}, "tools.0.type", "function"),
    ],
)
def test_bad_tool_fields_are_400s_naming_the_field(body: dict[str, Any], param: str, words: str) -> None:
    message, got = refusal({"messages": [ASK], **body})
    assert got == param and words in message, message


@pytest.mark.parametrize(
    ("messages", "param", "words"),
    [
        ([ASK, {"role": "tool", "tool_call_id": "x", "content": "r"}], "messages", "no earlier assistant"),
        (
            [ASK, {"role": "assistant", "tool_calls": [call()]}, ASK],
            "messages",
            "no 'tool' message answers: call_1",
        ),
        ([ASK, {"role": "assistant", "tool_calls": [call()]}], "messages", "no 'tool' message answers"),
        ([ASK, {"role": "tool", "content": "r"}], "messages.1", "needs tool_call_id"),
        (
            [{"role": "user", "content": "x", "tool_calls": [call()]}],
            "messages.0",
            "only allowed on assistant",
        ),
        (
            [ASK, {"role": "assistant", "tool_calls": [call(arguments="{not json")]}],
            "messages.1.tool_calls.0.function",
            "not valid JSON",
        ),
        (
            [ASK, {"role": "assistant", "tool_calls": [call(arguments="[1]")]}],
            "messages.1.tool_calls.0.function",
            "JSON object",
        ),
    ],
)
def test_broken_tool_conversations_are_refused(
    messages: list[dict[str, Any]], param: str, words: str
) -> None:
    message, got = refusal({"messages": messages})
    assert got == param and words in message, message


def test_streamed_tool_call_pieces_serialise_as_openai_sends_them() -> None:
    head = ToolCallDelta(
        index=0, id="call_1", type="function", function=FunctionCallDelta(name="f", arguments="")
    )
    body = ToolCallDelta(index=0, function=FunctionCallDelta(arguments='{"a": 1}'))
    chunks = [
        ChatCompletionChunk(id="c", model="m", choices=[ChunkChoice(delta=Delta(tool_calls=[piece]))])
        for piece in (head, body)
    ]
    first, second = (json.loads(c.model_dump_json(exclude_none=True))["choices"][0]["delta"] for c in chunks)
    assert first == {
        "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
        ]
    }
    assert second == {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]}
