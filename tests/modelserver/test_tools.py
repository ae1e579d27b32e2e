"""modelserver.tools: call syntaxes, their grammars, the streamed splitter, the prompt and the wire shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flashsight_common.schemas import ChatCompletionRequest, ChatMessage, Delta
from modelserver.tools import (
    ToolDeltaWriter,
    ToolRequest,
    detect_format,
    prompt_style,
    split_answer,
    tool_request_of,
    with_tools,
)
from modelserver.tools.formats import GLM4, GLM45, HERMES, ToolFormat

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK = {"role": "user", "content": "Weather in Paris?"}


def tools_of(choice: Any = "auto", parallel: bool | None = None) -> ToolRequest:
    body: dict[str, Any] = {"messages": [ASK], "tools": [WEATHER, TIME], "tool_choice": choice}
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    request = tool_request_of(ChatCompletionRequest.model_validate(body))
    assert request is not None
    return request


HERMES_CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}</tool_call>'
GLM4_CALL = 'get_weather\n{"city": "Paris", "days": 2}'
GLM45_CALL = (
    "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"
    "<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>"
)
CALLS = {HERMES: HERMES_CALL, GLM4: GLM4_CALL, GLM45: GLM45_CALL}


def test_tool_choice_none_means_no_tool_request() -> None:
    body = ChatCompletionRequest.model_validate(
        {"messages": [ASK], "tools": [WEATHER], "tool_choice": "none"}
    )
    assert tool_request_of(body) is None
    forced = tools_of({"type": "function", "function": {"name": "get_time"}})
    assert forced.mode == "forced" and [f.name for f in forced.callable] == ["get_time"]
    assert [f.name for f in forced.offered] == ["get_weather", "get_time"]  # the prompt shows them all


@pytest.mark.parametrize("fmt", [HERMES, GLM4, GLM45], ids=lambda f: f.name)
def test_each_syntax_reads_back_its_own_call(fmt: ToolFormat) -> None:
    answer = split_answer(CALLS[fmt], fmt, tools_of())
    assert answer.content is None and len(answer.tool_calls) == 1
    call = answer.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Paris",
        "days": 2,
    }
    assert call.id.startswith("call_")


def test_prose_around_calls_is_content_and_whitespace_between_calls_is_dropped() -> None:
    text = f"Let me check.\n{HERMES_CALL}\n\n{HERMES_CALL.replace('Paris', 'Rome')}\n"
    answer = split_answer(text, HERMES, tools_of())
    assert answer.content == "Let me check."
    assert [json.loads(c.function.arguments)["city"] for c in answer.tool_calls] == ["Paris", "Rome"]
    assert len({c.id for c in answer.tool_calls}) == 2


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>',  # not offered
        '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',  # not JSON
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Pa',  # cut off (length)
    ],
)
def test_text_that_is_not_a_valid_call_stays_text(text: str) -> None:
    answer = split_answer(text, HERMES, tools_of())
    assert answer.tool_calls == [] and answer.content == text


def stream(writer: ToolDeltaWriter, text: str, size: int) -> list[Delta]:
    return [d for i in range(0, len(text), size) for d in writer.feed(text[i : i + size])] + writer.finish()


@pytest.mark.parametrize("fmt", [HERMES, GLM4, GLM45], ids=lambda f: f.name)
def test_streaming_in_any_pieces_gives_the_same_answer(fmt: ToolFormat) -> None:
    text = ("Sure. " if fmt is not GLM4 else "") + CALLS[fmt] + " Done."
    whole = split_answer(text, fmt, tools_of())
    for size in (1, 2, 3, 7):
        writer = ToolDeltaWriter(fmt, tools_of())
        deltas = stream(writer, text, size)
        content = "".join(d.content or "" for d in deltas)
        pieces = [p for d in deltas for p in d.tool_calls or ()]
        assert content == (whole.content or "")
        head, *fragments = pieces  # OpenAI's shape: id/type/name first, then the arguments
        assert head.index == 0 and head.id and head.type == "function"
        assert head.function is not None and head.function.name == "get_weather"
        assert head.function.arguments == ""
        assert all(p.index == 0 and p.id is None for p in fragments)
        assert all(p.function and p.function.name is None for p in fragments)
        arguments = "".join(p.function.arguments or "" for p in fragments if p.function)
        assert arguments == whole.tool_calls[0].function.arguments  # exactly, not just the same value
        assert len(fragments) > 1 or size == 7  # written as decoded, not in one piece at the end
        assert writer.finish_reason("stop") == "tool_calls"


@pytest.mark.parametrize("fmt", [HERMES, GLM4, GLM45], ids=lambda f: f.name)
def test_a_call_starts_as_soon_as_its_name_is_written(fmt: ToolFormat) -> None:
    call = CALLS[fmt]
    cut = call.index("Paris")  # the name and the first key are written; the value is not
    writer = ToolDeltaWriter(fmt, tools_of())
    deltas = writer.feed(call[:cut])
    calls = [p for d in deltas for p in d.tool_calls or ()]
    assert calls and calls[0].function is not None and calls[0].function.name == "get_weather"
    assert not any(d.content for d in deltas)


def test_a_streamed_call_cut_off_has_gone_out_in_part_and_keeps_length() -> None:
    text = f'{HERMES_CALL}\n<tool_call>{{"name": "get_time", "arguments": {{"city": "Ro'
    writer = ToolDeltaWriter(HERMES, tools_of())
    deltas = stream(writer, text, 3)
    pieces = [p for d in deltas for p in d.tool_calls or ()]
    assert [p.function.name for p in pieces if p.id and p.function] == ["get_weather", "get_time"]
    partial = "".join(p.function.arguments or "" for p in pieces if p.index == 1 and p.function)
    assert partial == '{"city": "Ro'  # what was written of it, never as content too
    assert not any(d.content for d in deltas)
    assert writer.finish_reason("length") == "length"
    assert writer.finish_reason("stop") == "stop"  # a stop string cut it: not "tool_calls"
    whole = split_answer(text, HERMES, tools_of())  # unstreamed: the cut call is text
    assert [c.function.name for c in whole.tool_calls] == ["get_weather"]
    assert whole.content == '<tool_call>{"name": "get_time", "arguments": {"city": "Ro'


def test_a_call_not_in_the_grammars_shape_is_read_whole() -> None:
    text = '<tool_call>{"arguments": {"city": "Paris", "days": 2}, "name": "get_weather"}</tool_call>'
    whole = split_answer(text, HERMES, tools_of())
    assert json.loads(whole.tool_calls[0].function.arguments) == {"city": "Paris", "days": 2}
    writer = ToolDeltaWriter(HERMES, tools_of())
    assert writer.feed(text[:-12]) == []  # held: the call's end has not come
    pieces = [p for d in writer.feed(text[-12:]) for p in d.tool_calls or ()]
    assert len(pieces) == 2 and pieces[1].function is not None
    assert pieces[1].function.arguments == whole.tool_calls[0].function.arguments


def test_an_end_marker_inside_a_string_argument_does_not_end_the_call() -> None:
    text = '<tool_call>{"name": "get_time", "arguments": {"city": "a</tool_call>b"}}</tool_call>'
    call = split_answer(text, HERMES, tools_of()).tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "a</tool_call>b"}


def test_a_partial_trigger_is_held_back_then_released_as_text() -> None:
    writer = ToolDeltaWriter(HERMES, tools_of())
    assert [d.content for d in writer.feed("a <tool_")] == ["a"]  # "<tool_" could open a call
    assert [d.content for d in writer.feed("kit> b")] == [" <tool_kit> b"]


def test_raw_control_characters_in_strings_come_out_escaped() -> None:
    text = '<tool_call>{"name": "get_time", "arguments": {"city": "Pa\x07ri\ns"}}</tool_call>'
    call = split_answer(text, HERMES, tools_of()).tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "Pa\x07ri\ns"}  # strict json.loads succeeds


def test_glm45_values_follow_the_schema_types() -> None:
    text = (
        "<tool_call>get_weather<arg_key>city</arg_key><arg_value>\t42 </arg_value>"
        "<arg_key>days</arg_key><arg_value>3</arg_value></tool_call>"
    )
    call = split_answer(text, GLM45, tools_of()).tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "42", "days": 3}  # a string stays a string


@pytest.mark.parametrize(
    ("template", "fmt", "style"),
    [
        ("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}", HERMES, "text"),
        ("{% if tools %}{{ tools | tojson }}{% endif %}<tool_call>", HERMES, "native"),
        ("{% if item['tools'] is defined %}<|system|>{% endif %}<|observation|>", GLM4, "glm4"),
        ("{% if tools %}<arg_key>{% endif %}<|observation|>", GLM45, "native"),
    ],
)
def test_the_chat_template_picks_syntax_and_prompt_style(template: str, fmt: ToolFormat, style: str) -> None:
    assert detect_format(template) is fmt
    assert prompt_style(fmt, template) == style


def _conversation() -> tuple[list[dict[str, Any]], list[ChatMessage]]:
    body = ChatCompletionRequest.model_validate(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                ASK,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
            ],
            "tools": [WEATHER],
        }
    )
    turns = [{"role": m.role, "content": m.text()} for m in body.messages]
    return turns, list(body.messages)


def test_text_style_writes_tools_calls_and_results_into_plain_turns() -> None:
    turns, messages = _conversation()
    out, kwargs = with_tools(turns, messages, tools_of(), style="text")
    assert kwargs == {}
    assert out[0]["content"].startswith("Be brief.") and '"name": "get_weather"' in out[0]["content"]
    assert (
        '<tool_call>{"name": "<function name>", "arguments": {<arguments as JSON>}}</tool_call>'
        in out[0]["content"]
    )
    assert (
        out[2]["content"] == '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    )
    assert out[3] == {
        "role": "user",
        "content": "The function get_weather returned:\n18 C\nAnswer my question using this result.",
    }


def test_glm4_style_puts_tools_on_the_system_turn_and_calls_in_metadata() -> None:
    turns, messages = _conversation()
    out, _ = with_tools(turns, messages, tools_of(), style="glm4")
    assert out[0]["tools"][0]["function"]["name"] == "get_weather"
    assert out[2] == {"role": "assistant", "metadata": "get_weather", "content": '{"city": "Paris"}'}
    assert out[3]["role"] == "observation" and out[3]["content"] == "18 C"


def test_native_style_passes_tools_and_structured_calls() -> None:
    turns, messages = _conversation()
    out, kwargs = with_tools(turns, messages, tools_of(), style="native")
    assert [t["function"]["name"] for t in kwargs["tools"]] == ["get_weather", "get_time"]
    assert out[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert out[3]["role"] == "tool" and out[3]["tool_call_id"] == "c1"


@pytest.mark.parametrize("size", [1, 4, 200])
def test_a_streamed_glm45_call_that_breaks_off_is_text_when_whole(size: int) -> None:
    # Only without a grammar: a head in GLM-4.5's shape, then no key/value pairs.
    text = "<tool_call>get_weather\n<arg_key>city</arg_key><arg_value>Paris</arg_value> etc.</tool_call> ok"
    whole = split_answer(text, GLM45, tools_of())
    assert whole.tool_calls == [] and whole.content == text
    writer = ToolDeltaWriter(GLM45, tools_of())
    deltas = stream(writer, text, size)
    assert "".join(d.content or "" for d in deltas) == " ok"
    assert writer.finish_reason("stop") == "stop"
