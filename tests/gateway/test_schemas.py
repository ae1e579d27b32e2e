"""gateway.schemas: the flashsight metadata changes only through its own methods, and renders to headers."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from gateway.schemas import DEGRADED_NOTICE, FlashSightMeta, GatewayChatRequest


def _meta() -> FlashSightMeta:
    return FlashSightMeta(route="cascade", route_reason="keyword", matched_keyword="为什么")


def test_marking_degraded_sets_the_reason_and_the_notice() -> None:
    meta = _meta()
    meta.mark_degraded("reasoner_circuit_open")
    assert (meta.degraded, meta.degraded_reason, meta.notice) == (
        True,
        "reasoner_circuit_open",
        DEGRADED_NOTICE,
    )


def test_a_known_degradation_reason_is_kept_when_shedding_is_marked_after_it() -> None:
    meta = _meta()
    meta.mark_degraded("reasoner_timeout")
    meta.mark_shed(["overload_max_tokens", "overload_greedy"])
    assert meta.degraded_reason == "reasoner_timeout" and meta.load_shedding == [
        "overload_max_tokens",
        "overload_greedy",
    ]
    untouched = _meta()
    untouched.mark_shed([])
    assert not untouched.degraded and untouched.load_shedding == []


def test_stages_models_captions_and_the_total_are_recorded() -> None:
    meta = _meta()
    started = time.perf_counter() - 0.05
    meta.record_stage("reasoner", started=started)
    meta.record_model("reasoner", "smollm2")
    meta.record_model("vision", None)  # an upstream that named no model leaves it unknown
    meta.record_captions(cache="hit", vision_model="ocr-lite", elapsed_ms=1.234)
    assert meta.finish(started=started) is meta
    assert meta.timings_ms.reasoner is not None and meta.timings_ms.reasoner >= 50
    assert meta.timings_ms.total is not None and meta.timings_ms.caption == 1.2
    assert (
        meta.models.model_dump() == {"vision": "ocr-lite", "reasoner": "smollm2"}
        and meta.caption_cache == "hit"
    )


def test_headers_percent_encode_the_keyword_and_name_the_degradation() -> None:
    meta = _meta()
    meta.mark_degraded("reasoner_error")
    headers = meta.headers()
    assert headers["X-FlashSight-Keyword"] == "%E4%B8%BA%E4%BB%80%E4%B9%88"
    assert headers["X-FlashSight-Degraded"] == "reasoner_error" and headers["X-FlashSight-Cache"] == "none"


def test_the_chat_request_reports_where_the_body_forces_a_route() -> None:
    body = GatewayChatRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "route": "direct",
            "flashsight": {"route": "cascade"},
        }
    )
    assert body.route_forces() == {"route": "direct", "flashsight.route": "cascade"}


# --- the field policy: shared with the model services; tool fields and thinking pass on ---

HI = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL = {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"messages": HI, "logprobs": True}, "logprobs", "token log-probabilities are not returned"),
        ({"messages": HI, "modalities": ["audio"]}, "modalities", "text only"),
        ({"messages": HI, "temprature": 0}, "temprature", "unknown field"),
        ({"messages": HI, "tool_choice": "required"}, "tool_choice", "only allowed when tools are given"),
        (
            {"messages": HI, "tools": [WEATHER], "response_format": {"type": "json_object"}},
            None,
            "response_format and tools cannot be combined",
        ),
        (
            {"messages": [*HI, {"role": "assistant", "tool_calls": [CALL]}]},
            "messages",
            "calls tools that no 'tool' message answers",
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


def test_tool_fields_and_the_thinking_switch_are_what_the_stages_are_sent() -> None:
    body = GatewayChatRequest.model_validate(
        {
            "messages": [
                *HI,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "a", "content": "r"},
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
            "enable_thinking": True,
        }
    )
    assert body.tool_fields() == {
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
    }
    # The top-level spelling goes on as chat_template_kwargs, which vLLM and SGLang take too.
    assert body.thinking() == {"chat_template_kwargs": {"enable_thinking": True}}
    nested = GatewayChatRequest.model_validate(
        {"messages": HI, "chat_template_kwargs": {"enable_thinking": False}}
    )
    assert nested.thinking() == {"chat_template_kwargs": {"enable_thinking": False}}
    assert GatewayChatRequest.model_validate({"messages": HI}).thinking() == {}
    assert GatewayChatRequest.model_validate({"messages": HI}).tool_fields() == {}


def test_tools_with_tool_choice_none_may_ask_for_structured_output() -> None:
    body = GatewayChatRequest.model_validate(
        {
            "messages": HI,
            "tools": [WEATHER],
            "tool_choice": "none",
            "response_format": {"type": "json_object"},
        }
    )
    assert body.response_format is not None
