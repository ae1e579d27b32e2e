"""The gateway shares the field policy, and refuses by name what it does not pass to its stages yet."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

HI = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL = {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"messages": HI, "logprobs": True}, "logprobs", "token log-probabilities are not returned"),
        ({"messages": HI, "modalities": ["audio"]}, "modalities", "text only"),
        ({"messages": HI, "temprature": 0}, "temprature", "unknown field"),
        ({"messages": HI, "tools": [WEATHER]}, "tools", "not supported by the gateway yet"),
        (
            {"messages": HI, "chat_template_kwargs": {"enable_thinking": True}},
            "chat_template_kwargs",
            "not supported by the gateway yet",
        ),
        (
            {
                "messages": [
                    *HI,
                    {"role": "assistant", "tool_calls": [CALL]},
                    {"role": "tool", "tool_call_id": "a", "content": "r"},
                ]
            },
            None,
            "not routed by the gateway",
        ),
    ],
)
async def test_refused_fields_are_400s_naming_them(
    client: httpx.AsyncClient, body: dict[str, Any], param: str | None, says: str
) -> None:
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert says in error["message"] and error["param"] == param


async def test_neutral_and_ignored_fields_pass(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={
            "messages": HI,
            "user": "u-1",
            "metadata": {"k": "v"},
            "logprobs": False,
            "frequency_penalty": 0,
            "store": False,
            "service_tier": "auto",
        },
    )
    assert response.status_code == 200, response.text
