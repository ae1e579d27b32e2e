"""Tool calls from real model processes: the embedded SmolLM2 reasoner, tiny GLM-4 chat, tiny GLM-4.6V.

Every call any of them writes must parse (``json.loads``) and validate against the
function's schema, over seeds and temperatures, plain and streamed, read by the official
SDK; tool_choice none / required / named and a multi-turn exchange with a tool result.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from openai import AsyncOpenAI, OpenAI
from PIL import Image
from reasoner.config import ReasonerSettings
from reasoner.embedded import lookup, prepare

from devkit.processes import ServiceProcess
from tests.support.tiny_models import GLM4_CHAT_TINY, GLM46V_TINY, tiny_model_path
from tests.support.tool_specs import TIME_SCHEMA, assert_valid_calls, function_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
TOOLS = [
    function_tool("get_weather", "Weather forecast for a city", WEATHER_SCHEMA),
    function_tool("get_time", "Local time in a city", TIME_SCHEMA),
]
SCHEMAS = {"get_weather": WEATHER_SCHEMA, "get_time": TIME_SCHEMA}
ASK = {"role": "user", "content": "What will the weather be in Paris for the next 3 days, in celsius?"}


@pytest.fixture(scope="module")
def smollm2() -> Iterator[ServiceProcess]:
    prepare(lookup("smollm2"), ReasonerSettings().cache_dir)  # what `make models` does; instant when done
    with ServiceProcess(
        module="reasoner", port_env="REASONER_PORT", startup_timeout=180, env={"REASONER_MAX_BATCH_SIZE": "8"}
    ) as service:
        yield service


@pytest.fixture(scope="module")
def glm4_tiny() -> Iterator[ServiceProcess]:
    with ServiceProcess(
        module="reasoner",
        port_env="REASONER_PORT",
        startup_timeout=180,
        env={"REASONER_MODEL": str(tiny_model_path(GLM4_CHAT_TINY)), "REASONER_MAX_BATCH_SIZE": "8"},
    ) as service:
        yield service


def client_of(service: ServiceProcess) -> OpenAI:
    return OpenAI(base_url=service.base_url + "/v1", api_key="unused", timeout=300)


def sweep(
    service: ServiceProcess, *, seeds: range, temperatures: tuple[float, ...], max_tokens: int, **fields: Any
) -> list[Any]:
    """One request per (seed, temperature), sent at once so the engine batches them."""

    async def run() -> list[Any]:
        async with AsyncOpenAI(base_url=service.base_url + "/v1", api_key="unused", timeout=600) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.chat.completions.create(
                            model="default",
                            messages=[ASK],
                            tools=TOOLS,
                            seed=seed,
                            temperature=t,
                            max_tokens=max_tokens,
                            **fields,
                        )
                        for seed in seeds
                        for t in temperatures
                    )
                )
            )

    return asyncio.run(run())


def test_smollm2_calls_are_always_valid_over_seeds_and_temperatures(smollm2: ServiceProcess) -> None:
    answers = sweep(
        smollm2,
        seeds=range(4),
        temperatures=(0.0, 0.8, 1.5),
        max_tokens=64,
        tool_choice="required",
        parallel_tool_calls=False,
    )
    for answer in answers:
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        assert choice.message.content is None
        assert_valid_calls(choice.message.tool_calls, SCHEMAS, at_least=1)
        assert len(choice.message.tool_calls) == 1  # parallel_tool_calls false: one call


def streamed_like_whole(client: OpenAI, **fields: Any) -> list[Any]:
    """The streamed answer's call pieces, checked against the same (seeded) answer unstreamed:
    one call, its head first, its arguments in several fragments joining to exactly the
    unstreamed arguments."""
    whole = client.chat.completions.create(**fields)
    pieces: list[Any] = []
    finish = None
    for chunk in client.chat.completions.create(**fields, stream=True):
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            pieces += choice.delta.tool_calls or []
    assert finish == whole.choices[0].finish_reason == "tool_calls"
    call = (whole.choices[0].message.tool_calls or [])[0]
    head, *fragments = pieces
    assert head.function.name == call.function.name and head.id and head.function.arguments == ""
    assert all(p.index == head.index == 0 and p.id is None for p in fragments)
    assert len(fragments) > 1  # streamed as decoded
    assert "".join(p.function.arguments or "" for p in fragments) == call.function.arguments
    return pieces


def test_smollm2_named_function_streamed_through_the_sdk(smollm2: ServiceProcess) -> None:
    pieces = streamed_like_whole(
        client_of(smollm2),
        model="default",
        messages=[ASK],
        tools=TOOLS,
        temperature=0.7,
        seed=3,
        max_tokens=64,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        stream_options={"include_usage": True},
    )
    assert pieces[0].function.name == "get_time"
    jsonschema.validate(json.loads("".join(p.function.arguments or "" for p in pieces)), TIME_SCHEMA)


def test_smollm2_multi_turn_with_a_tool_result(smollm2: ServiceProcess) -> None:
    client = client_of(smollm2)
    first = client.chat.completions.create(
        model="default",
        messages=[ASK],
        tools=TOOLS,
        tool_choice="required",
        temperature=0,
        max_tokens=64,
        parallel_tool_calls=False,
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    history: list[Any] = [
        ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "Paris: 18 C and sunny for 3 days."},
    ]
    final = client.chat.completions.create(
        model="default", messages=history, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=40
    )
    assert final.choices[0].message.tool_calls is None and final.choices[0].message.content
    assert final.choices[0].finish_reason in ("stop", "length")
    again = client.chat.completions.create(
        model="default", messages=history, tools=TOOLS, tool_choice="auto", temperature=0, max_tokens=64
    )
    message = again.choices[0].message  # auto: prose or a call, but a call is a valid one
    if message.tool_calls:
        assert_valid_calls(message.tool_calls, SCHEMAS)
    else:
        assert message.content


def test_smollm2_refuses_what_it_does_not_implement(smollm2: ServiceProcess) -> None:
    with httpx.Client(base_url=smollm2.base_url, timeout=60) as http:
        for field, value in (("logprobs", True), ("n", 2), ("audio", {"voice": "x"}), ("prediction", {})):
            error = http.post("/v1/chat/completions", json={"messages": [ASK], field: value}).json()["error"]
            assert error["param"] == field and error["type"] == "invalid_request_error", error


def test_tiny_glm4_writes_valid_calls_in_its_own_syntax(glm4_tiny: ServiceProcess) -> None:
    answers = sweep(glm4_tiny, seeds=range(4), temperatures=(0.5, 1.0), max_tokens=96, tool_choice="required")
    for answer in answers:
        assert answer.choices[0].finish_reason == "tool_calls", answer.choices[0]
        assert_valid_calls(answer.choices[0].message.tool_calls, SCHEMAS)
    log = glm4_tiny.log_tail(200)
    assert "tool calls: glm4 syntax, glm4 prompt" in log


def test_tiny_glm4_streams_a_call(glm4_tiny: ServiceProcess) -> None:
    pieces = streamed_like_whole(
        client_of(glm4_tiny),
        model="default",
        messages=[ASK],
        tools=TOOLS,
        temperature=1.0,
        seed=5,
        max_tokens=96,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert pieces[0].function.name == "get_weather"
    jsonschema.validate(json.loads("".join(p.function.arguments or "" for p in pieces)), WEATHER_SCHEMA)


def png_data_url() -> str:
    buffer = io.BytesIO()
    Image.effect_noise((112, 112), 60).convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_tiny_glm46v_calls_tools_about_an_image(service_process) -> None:  # type: ignore[no-untyped-def]
    service: ServiceProcess = service_process(
        module="vision",
        port_env="VISION_PORT",
        startup_timeout=180,
        env={
            "VISION_BACKEND": "glm",
            "VISION_MODEL": str(tiny_model_path(GLM46V_TINY)),
            "VISION_DEVICE": "cpu",
        },
    )
    message = {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": png_data_url()}},
            {"type": "text", "text": "Which city is this? Get its weather."},
        ],
    }
    client = client_of(service)
    for seed in range(3):
        answer = client.chat.completions.create(
            model="default",
            messages=[message],
            tools=TOOLS,
            seed=seed,
            temperature=1.0,
            max_tokens=256,
            tool_choice="required",
        )
        assert answer.choices[0].finish_reason == "tool_calls", answer.choices[0]
        assert_valid_calls(answer.choices[0].message.tool_calls, SCHEMAS)
    assert "glm: tool calls in glm45 syntax" in service.log_tail(200)
    # Streamed, GLM-4.5's key/value pairs go out a pair at a time, joining to the same arguments.
    streamed_like_whole(
        client, model="default", messages=[message], tools=TOOLS, seed=0, temperature=1.0, max_tokens=256,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )  # fmt: skip
