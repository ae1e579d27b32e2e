"""Tool calls through the gateway on the real embedded stack, read by the official OpenAI SDK.

Real processes: a private Redis, vision (``ocr-lite``, which calls no tools), the reasoner
(SmolLM2-135M, whose calls the grammar holds to the schema) and the gateway with API keys
and the answer cache on. So a tools request with an image takes the cascade (the captions
into the reasoner, which calls); one without goes to the reasoner. The reasoner is stopped
by the last tests: a degraded answer never holds an invented call, and a request that must
call gets a 503. The gateway runs at its default stream deadlines (a 10 s first token):
streamed calls go out as the reasoner decodes them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from gateway.answer.repetition import loop_start
from openai import APIStatusError, OpenAI
from reasoner.config import ReasonerSettings
from reasoner.embedded import lookup, prepare

from devkit.screens import as_data_url, order_screenshot
from devkit.stack import Stack, running_stack
from tests.support.tool_specs import TIME_SCHEMA, assert_valid_calls, function_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS = (f"sk-tools-a-{uuid.uuid4().hex}", f"sk-tools-b-{uuid.uuid4().hex}")
ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_number": {"type": "string", "pattern": "^[0-9]{5}$"}},
    "required": ["order_number"],
    "additionalProperties": False,
}
TOOLS = [
    function_tool("get_order_status", "Look up an order's shipping status by its order number", ORDER_SCHEMA),
    function_tool("get_time", "Local time in a city", TIME_SCHEMA),
]
SCHEMAS = {"get_order_status": ORDER_SCHEMA, "get_time": TIME_SCHEMA}
ASK = {"role": "user", "content": "Where is my order 12345?"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    prepare(lookup("smollm2"), ReasonerSettings().cache_dir)  # what `make models` does; instant when done
    with running_stack(
        gateway_env={
            "GATEWAY_API_KEYS": ",".join(KEYS),
            "GATEWAY_ANSWER_CACHE": "true",
            "GATEWAY_REASONER_TIMEOUT_S": "120",
        },
        reasoner_env={"REASONER_DEFAULT_MAX_TOKENS": "48"},
    ) as running:
        yield running


def sdk(stack: Stack, key: str = KEYS[0]) -> OpenAI:
    return OpenAI(base_url=stack.url + "/v1", api_key=key, timeout=300, max_retries=0)


def test_a_required_call_plain(stack: Stack) -> None:
    answer = sdk(stack).chat.completions.create(
        model="auto", messages=[ASK], tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
        temperature=0.7, seed=1, max_tokens=48,
    )  # fmt: skip
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert_valid_calls(choice.message.tool_calls, SCHEMAS)
    assert len(choice.message.tool_calls or []) == 1
    meta = answer.model_extra["flashsight"]  # type: ignore[index]
    assert (meta["route"], meta["route_reason"]) == ("cascade", "no_image")
    assert answer.model == meta["models"]["reasoner"] == "smollm2-135m-instruct"
    assert (answer.model_extra or {}).keys() <= {"flashsight", "confidence"}  # FlashSight's own, no engine's


def streamed_call(client: OpenAI, **fields: Any) -> tuple[list[Any], str | None, float | None]:
    """A streamed request's tool-call pieces, its finish reason, and the seconds until the first piece."""
    started = time.monotonic()
    stream = client.chat.completions.create(**fields, stream=True)  # returns at the primed head
    pieces: list[Any] = []
    finish = None
    first: float | None = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            if choice.delta.tool_calls and first is None:
                first = time.monotonic() - started
            pieces += choice.delta.tool_calls or []
    return pieces, finish, first


def test_a_named_function_streamed(stack: Stack) -> None:
    pieces, finish, _ = streamed_call(
        sdk(stack), model="auto", messages=[ASK], tools=TOOLS, stream_options={"include_usage": True},
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        temperature=0.8, seed=2, max_tokens=48,
    )  # fmt: skip
    assert finish == "tool_calls"
    assert pieces[0].function.name == "get_time" and pieces[0].id
    fragments = [p.function.arguments for p in pieces[1:] if p.function and p.function.arguments]
    assert len(fragments) > 1  # the arguments stream as the reasoner decodes them
    jsonschema.validate(json.loads("".join(fragments)), TIME_SCHEMA)


JOKE = {
    "type": "function",
    "function": {
        "name": "Joke",
        "description": "Joke to tell user.",
        "parameters": {
            "type": "object",
            "properties": {
                "setup": {"type": "string", "description": "question to set up a joke"},
                "punchline": {"type": "string", "description": "answer to resolve the joke"},
            },
            "required": ["setup", "punchline"],
        },
    },
}
JOKE_REQUEST: dict[str, Any] = {
    "model": "auto", "messages": [{"role": "user", "content": "Tell me a joke about cats."}],
    "tools": [JOKE], "tool_choice": {"type": "function", "function": {"name": "Joke"}},
    "temperature": 0, "max_tokens": 128,
}  # fmt: skip


def test_a_forced_call_streams_within_the_default_first_token_deadline(stack: Stack) -> None:
    # LangChain's standard suite found this one: greedy SmolLM2-135M loops inside the Joke's
    # setup until max_tokens (~10 s of decoding here), longer than the gateway's first-token
    # deadline, so a call held back until complete was a 503. Now its head comes first.
    pieces, finish, first = streamed_call(sdk(stack), **JOKE_REQUEST)
    assert first is not None and first < 10  # the call's head, before the gateway's default deadline
    assert pieces[0].function.name == "Joke" and pieces[0].id and pieces[0].function.arguments == ""
    fragments = [p.function.arguments for p in pieces[1:] if p.function and p.function.arguments]
    assert len(fragments) > 10 and all(p.index == 0 for p in pieces)
    # max_tokens cut the call: sent in part, as OpenAI streams it, and said so; keys in the
    # schema's order (setup first).
    assert finish == "length" and "".join(fragments).startswith('{"setup": "')


def test_a_call_cut_off_stays_the_models_text_with_length(stack: Stack) -> None:
    # The same request unstreamed: a call cut by max_tokens is content with "length", never
    # shortened by the gateway's loop cutter and passed off as a "stop" (docs/api.md).
    answer = sdk(stack).chat.completions.create(**JOKE_REQUEST)
    choice = answer.choices[0]
    assert choice.finish_reason == "length" and not choice.message.tool_calls
    content = choice.message.content or ""
    assert content.startswith('<tool_call>{"name": "Joke", "arguments": {')
    assert answer.usage is not None and answer.usage.completion_tokens == 128
    assert loop_start(content) is not None  # a loop the cutter would cut in a text answer: kept whole


def test_a_tool_result_is_answered_in_text(stack: Stack) -> None:
    client = sdk(stack)
    first = client.chat.completions.create(
        model="auto", messages=[ASK], tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
        temperature=0, max_tokens=48,
    )  # fmt: skip
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    history: list[Any] = [
        ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'},
    ]
    final = client.chat.completions.create(
        model="auto", messages=history, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=24
    )
    assert final.choices[0].message.tool_calls is None and final.choices[0].message.content
    assert final.choices[0].finish_reason in ("stop", "length")


def test_an_image_tools_request_takes_the_cascade_and_the_reasoner_calls(stack: Stack) -> None:
    screen = as_data_url(order_screenshot(order_no="12345"))
    answer = sdk(stack).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": screen}},
            {"type": "text", "text": "Look up this order."},
        ]}],
        tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_order_status"}},
        temperature=0, max_tokens=48,
    )  # fmt: skip
    meta = answer.model_extra["flashsight"]  # type: ignore[index]
    assert (meta["route"], meta["route_reason"]) == ("cascade", "tools")  # ocr-lite calls no tools
    assert meta["models"] == {"vision": "ocr-lite", "reasoner": "smollm2-135m-instruct"}
    assert answer.choices[0].finish_reason == "tool_calls"
    assert_valid_calls(answer.choices[0].message.tool_calls, SCHEMAS)


def test_the_answer_cache_replays_calls_and_never_across_keys(stack: Stack) -> None:
    question = {"role": "user", "content": f"Where is my order 12345? ({uuid.uuid4().hex[:8]})"}
    fields: dict[str, Any] = {
        "model": "auto", "messages": [question], "tools": TOOLS, "tool_choice": "required",
        "parallel_tool_calls": False, "temperature": 0, "max_tokens": 48,
    }  # fmt: skip
    first = sdk(stack).chat.completions.create(**fields)
    again = sdk(stack).chat.completions.create(**fields)
    other_key = sdk(stack, KEYS[1]).chat.completions.create(**fields)
    assert first.model_extra["flashsight"]["answer_cache"] == "miss"  # type: ignore[index]
    assert again.model_extra["flashsight"]["answer_cache"] == "hit"  # type: ignore[index]
    assert other_key.model_extra["flashsight"]["answer_cache"] == "miss"  # type: ignore[index]
    assert again.choices[0].finish_reason == "tool_calls"
    assert again.choices[0].message.tool_calls == first.choices[0].message.tool_calls
    streamed = sdk(stack).chat.completions.create(**fields, stream=True)
    pieces: list[Any] = []
    last: Any = None
    for chunk in streamed:
        last = chunk
        for choice in chunk.choices:
            pieces += choice.delta.tool_calls or []
    assert last.model_extra["flashsight"]["answer_cache"] == "hit"
    replayed = "".join(p.function.arguments or "" for p in pieces if p.function)
    assert replayed == "".join(c.function.arguments for c in first.choices[0].message.tool_calls or [])
    assert pieces[0].id == (first.choices[0].message.tool_calls or [])[0].id


def test_with_the_reasoner_down_no_call_is_invented(stack: Stack) -> None:
    stack.reasoner.stop()  # the last tests of the module: the reasoner stays down
    answer = sdk(stack).chat.completions.create(
        model="auto", messages=[ASK], tools=TOOLS, tool_choice="auto", temperature=0, max_tokens=24
    )
    meta = answer.model_extra["flashsight"]  # type: ignore[index]
    assert meta["degraded"] is True
    assert meta["degraded_reason"] in ("reasoner_unavailable", "reasoner_circuit_open")
    assert answer.choices[0].message.tool_calls is None and answer.choices[0].finish_reason != "tool_calls"
    assert answer.model == "ocr-lite"


@pytest.mark.parametrize("stream", [False, True])
def test_with_the_reasoner_down_a_required_call_is_a_503(stack: Stack, stream: bool) -> None:
    stack.reasoner.stop()
    with pytest.raises(APIStatusError) as refused:
        sdk(stack).chat.completions.create(
            model="auto", messages=[ASK], tools=TOOLS, tool_choice="required", stream=stream, max_tokens=24
        )
    assert refused.value.status_code == 503 and refused.value.response.headers["Retry-After"]
    assert refused.value.code == "tool_calls_unavailable"  # not vision's text passed off as an answer
