"""Tool calls through the model service's OpenAI routes, read by the official SDK (plain and streamed)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from modelserver.tools.formats import HERMES
from openai import AsyncOpenAI, BadRequestError

from tests.modelserver.conftest import build_app, chat, serve
from tests.support.fake_backend import FakeBackend

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def tool_backend() -> FakeBackend:
    backend = FakeBackend(step_s=0.001, token_chars=3)
    backend.tool_format = HERMES  # type: ignore[attr-defined]  # as a tool-calling backend exposes it
    return backend


def sdk(client: httpx.AsyncClient) -> AsyncOpenAI:
    return AsyncOpenAI(base_url="http://model/v1", api_key="unused", http_client=client)


async def test_readiness_says_the_model_calls_tools() -> None:
    # What the gateway routes a tools request with images by (GATEWAY_VISION_TOOLS=auto).
    app, _ = build_app(tool_backend())
    async with serve(app) as client:
        assert (await client.get("/readyz")).json()["calls_tools"] is True


async def test_the_sdk_reads_a_tool_call_and_its_finish_reason() -> None:
    app, _ = build_app(tool_backend())
    async with serve(app) as client:
        answer = await sdk(client).chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "say:Checking. " + CALL}],
            tools=[WEATHER],
        )
        raw = (await client.post("/v1/chat/completions", json=chat("say:" + CALL, tools=[WEATHER]))).json()
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert raw["choices"][0]["message"]["content"] is None  # present and null, as OpenAI sends it


async def test_the_sdk_assembles_a_streamed_tool_call() -> None:
    app, _ = build_app(tool_backend())
    async with serve(app) as client:
        stream = await sdk(client).chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "say:" + CALL + CALL.replace("Paris", "Rome")}],
            tools=[WEATHER],
            stream=True,
        )
        calls: dict[int, dict[str, str]] = {}
        fragments: dict[int, int] = {}
        finish = None
        async for chunk in stream:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                assert not choice.delta.content  # the call's text never leaks as content
                for piece in choice.delta.tool_calls or ():
                    if piece.function and piece.function.arguments:
                        fragments[piece.index] = fragments.get(piece.index, 0) + 1
                    entry = calls.setdefault(piece.index, {"name": "", "arguments": "", "id": ""})
                    entry["id"] += piece.id or ""
                    entry["name"] += (piece.function.name or "") if piece.function else ""
                    entry["arguments"] += (piece.function.arguments or "") if piece.function else ""
    assert finish == "tool_calls"
    assert [json.loads(c["arguments"])["city"] for c in calls.values()] == ["Paris", "Rome"]
    assert all(c["name"] == "get_weather" and c["id"].startswith("call_") for c in calls.values())
    # Each call streams as it is decoded (three characters a step here), not as one piece at its end.
    assert fragments[0] > 3 and fragments[1] > 3


async def test_tool_choice_none_answers_in_text() -> None:
    app, _ = build_app(tool_backend())
    async with serve(app) as client:
        body = (
            await client.post(
                "/v1/chat/completions", json=chat("say:" + CALL, tools=[WEATHER], tool_choice="none")
            )
        ).json()
    assert body["choices"][0]["message"]["content"] == CALL and body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [WEATHER]}, "tools"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "a", "content": "r"},
                ]
            },
            "tools",
        ),
    ],
)
async def test_a_backend_that_cannot_call_tools_refuses_them(fields: dict[str, Any], param: str) -> None:
    app, _ = build_app(FakeBackend(step_s=0.001))
    async with serve(app) as client:
        with pytest.raises(BadRequestError) as caught:
            await sdk(client).chat.completions.create(
                model="fake-model",
                **{  # type: ignore[call-overload]
                    "messages": [{"role": "user", "content": "hi"}],
                    **fields,
                },
            )
    assert caught.value.status_code == 400 and "does not call tools" in caught.value.message
    assert caught.value.body["param"] == param  # type: ignore[index]


async def test_unsupported_fields_are_refused_by_name_through_the_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=chat(logprobs=True, top_logprobs=2))
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "logprobs" and "top_logprobs" in error["message"]
    typo = (await client.post("/v1/chat/completions", json=chat(temprature=0))).json()["error"]
    assert typo["param"] == "temprature" and "unknown field" in typo["message"]
    tools_and_format = await client.post(
        "/v1/chat/completions", json=chat(tools=[WEATHER], response_format={"type": "json_object"})
    )
    assert (
        tools_and_format.status_code == 400 and tools_and_format.json()["error"]["param"] == "response_format"
    )
