"""gateway.answer.tools: where a tools request goes, what a stage without tools reads, when text may not."""

from __future__ import annotations

from typing import Any

import pytest
from gateway.answer.tools import (
    involves_tools,
    may_call,
    must_call,
    refuse_text_instead,
    route_tools,
    text_history,
    tool_texts,
)
from gateway.errors import RouteCannotCallToolsError, ToolCallsUnavailableError
from gateway.schemas import GatewayChatRequest

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
HISTORY = [
    {"role": "user", "content": "weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
]


def request(**fields: Any) -> GatewayChatRequest:
    return GatewayChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], **fields})


def test_a_request_involves_tools_when_it_offers_them_or_its_history_has_calls() -> None:
    assert involves_tools(request(tools=[WEATHER]))
    assert involves_tools(request(messages=HISTORY))  # no tools offered any more, a call in the history
    assert not involves_tools(request())


@pytest.mark.parametrize(
    ("choice", "must"),
    [
        (None, False),
        ("auto", False),
        ("none", False),
        ("required", True),
        ({"type": "function", "function": {"name": "get_weather"}}, True),
    ],
)
def test_only_required_and_a_named_function_must_call(choice: Any, must: bool) -> None:
    fields = {"tools": [WEATHER]} | ({"tool_choice": choice} if choice is not None else {})
    assert must_call(request(**fields)) is must


def test_an_answer_may_hold_calls_unless_tool_choice_is_none() -> None:
    assert may_call(request(tools=[WEATHER])) and may_call(request(tools=[WEATHER], tool_choice="auto"))
    assert not may_call(request(tools=[WEATHER], tool_choice="none"))
    assert not may_call(request())


def test_the_route_goes_where_a_model_can_see_and_call() -> None:
    direct = route_tools(None, has_images=True, vision_calls=True)
    assert (direct.route, direct.reason, direct.final) == ("direct", "tools", True)
    cascade = route_tools(None, has_images=True, vision_calls=False)
    assert (cascade.route, cascade.reason, cascade.final) == ("cascade", "tools", True)
    text_only = route_tools(None, has_images=False, vision_calls=True)
    assert (text_only.route, text_only.reason) == (
        "cascade",
        "no_image",
    )  # the reasoner, as any text question


def test_a_forced_route_is_kept_unless_direct_cannot_call() -> None:
    assert route_tools("cascade", has_images=True, vision_calls=True).route == "cascade"
    assert route_tools("direct", has_images=True, vision_calls=True).reason == "forced"
    with pytest.raises(RouteCannotCallToolsError) as refused:
        route_tools("direct", has_images=True, vision_calls=False)
    assert refused.value.status() == 400 and refused.value.param == "route"


def test_text_may_stand_in_for_auto_and_none_only() -> None:
    refuse_text_instead(request(tools=[WEATHER], tool_choice="auto"), because="x")
    refuse_text_instead(request(), because="x")
    named = {"type": "function", "function": {"name": "get_weather"}}
    with pytest.raises(ToolCallsUnavailableError) as refused:
        refuse_text_instead(
            request(tools=[WEATHER], tool_choice=named), because="the reasoner is down", retry_after=7
        )
    error = refused.value
    assert error.status() == 503 and error.headers() == {"Retry-After": "7"}
    assert error.code == "tool_calls_unavailable" and "'get_weather'" in error.message
    assert "the reasoner is down" in error.message


def test_a_stage_without_tools_reads_calls_and_results_as_text() -> None:
    turns = text_history(request(messages=HISTORY).messages)
    assert turns == [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": 'Called get_weather({"city":"Paris"})'},
        {"role": "user", "content": "Tool result (call_1): sunny, 21 C"},
    ]
    assert all("tool_calls" not in t and "tool_call_id" not in t for t in turns)


def test_tools_count_towards_the_prompts_cost() -> None:
    texts = tool_texts(request(messages=HISTORY, tools=[WEATHER]))
    assert any("get_weather" in t and "parameters" in t for t in texts)  # the definitions
    assert 'get_weather{"city": "Paris"}' in texts  # a call's arguments
    assert tool_texts(request()) == []
