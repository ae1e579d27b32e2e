"""The grammars tool_choice compiles to accept exactly the calls the request allows (xgrammar)."""

from __future__ import annotations

from typing import Any

import pytest
from flashsight_common.schemas import ChatCompletionRequest
from modelserver.errors import InvalidRequestError
from modelserver.structured import StructuredOutput
from modelserver.tools import ToolFormat, ToolRequest, tool_request_of
from modelserver.tools.formats import GLM4, GLM45, HERMES

from tests.support.tiny_models import GLM46V_TINY, tiny_model_path

xgr = pytest.importorskip("xgrammar")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
            "additionalProperties": False,
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


@pytest.fixture(scope="module")
def structured() -> StructuredOutput:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path(GLM46V_TINY))  # has <tool_call> and <arg_key>
    return StructuredOutput(tokenizer, vocab_size=len(tokenizer), stop_token_ids=[tokenizer.eos_token_id])


def request(choice: Any = "auto", parallel: bool | None = None) -> ToolRequest:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [WEATHER, TIME],
        "tool_choice": choice,
    }
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    tools = tool_request_of(ChatCompletionRequest.model_validate(body))
    assert tools is not None
    return tools


def accepts(structured: StructuredOutput, fmt: ToolFormat, tools: ToolRequest, text: str) -> bool:
    constraint = structured.tag_constraint(fmt.structural_tag(tools))
    matcher = constraint._matcher
    return bool(matcher.accept_string(text)) and bool(matcher.is_completed())


def hermes(name: str, arguments: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'


PARIS = '{"city": "Paris", "days": 2}'


@pytest.mark.parametrize(
    ("choice", "parallel", "text", "ok"),
    [
        ("auto", None, "Just prose.", True),
        ("auto", None, "Checking. " + hermes("get_weather", PARIS), True),
        ("auto", None, hermes("get_weather", PARIS) + hermes("get_time", '{"city": "Rome"}'), True),
        ("auto", False, hermes("get_weather", PARIS) + hermes("get_time", '{"city": "Rome"}'), False),
        ("auto", None, hermes("get_weather", '{"city": "Paris"}'), False),  # a required key missing
        ("auto", None, hermes("get_weather", '{"city": "Paris", "days": 0}'), False),  # below minimum
        ("auto", None, hermes("get_weather", '{"city": "Paris", "days": 2, "x": 1}'), False),  # extra key
        ("auto", None, hermes("rm_rf", "{}"), False),  # not an offered function
        ("required", None, "Just prose.", False),
        ("required", None, hermes("get_time", '{"city": "Rome"}'), True),
        ({"type": "function", "function": {"name": "get_time"}}, None, hermes("get_weather", PARIS), False),
        (
            {"type": "function", "function": {"name": "get_time"}},
            None,
            hermes("get_time", '{"city": "Rome"}'),
            True,
        ),
    ],
)
def test_hermes_grammar(
    structured: StructuredOutput, choice: Any, parallel: bool | None, text: str, ok: bool
) -> None:
    assert accepts(structured, HERMES, request(choice, parallel), text) is ok


@pytest.mark.parametrize(
    ("fmt", "choice", "text", "ok"),
    [
        (GLM4, "required", f"get_weather\n{PARIS}", True),
        (GLM4, "required", 'get_weather\n{"city": 3, "days": 2}', False),
        (GLM4, "auto", "Prose only.", True),
        (GLM4, "auto", f"get_weather\n{PARIS}", True),
        (
            GLM45,
            "required",
            "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>"
            "<arg_key>days</arg_key><arg_value>2</arg_value></tool_call>",
            True,
        ),
        (
            GLM45,
            "required",
            "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>",
            False,
        ),
        (GLM45, "auto", "Prose only.", True),
    ],
)
def test_glm_grammars(
    structured: StructuredOutput, fmt: ToolFormat, choice: str, text: str, ok: bool
) -> None:
    assert accepts(structured, fmt, request(choice), text) is ok


def test_arguments_follow_the_schemas_property_order(structured: StructuredOutput) -> None:
    joke = {
        "type": "function",
        "function": {
            "name": "Joke",
            "parameters": {
                "type": "object",
                "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
                "required": ["setup", "punchline"],
            },
        },
    }
    tools = tool_request_of(
        ChatCompletionRequest.model_validate(
            {"messages": [{"role": "user", "content": "x"}], "tools": [joke], "tool_choice": "required"}
        )
    )
    assert tools is not None
    assert accepts(structured, HERMES, tools, hermes("Joke", '{"setup": "Why?", "punchline": "So."}'))
    assert not accepts(structured, HERMES, tools, hermes("Joke", '{"punchline": "So.", "setup": "Why?"}'))


def test_a_schema_the_grammar_cannot_enforce_is_a_400(structured: StructuredOutput) -> None:
    bad = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}},
        },
    }
    tools = tool_request_of(
        ChatCompletionRequest.model_validate(
            {"messages": [{"role": "user", "content": "x"}], "tools": [bad], "tool_choice": "required"}
        )
    )
    assert tools is not None
    with pytest.raises(InvalidRequestError) as caught:
        structured.tag_constraint(HERMES.structural_tag(tools))
    assert caught.value.param == "tools"
