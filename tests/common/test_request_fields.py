"""No silent drops: every request field is implemented, ignored with a reason, or refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flashsight_common.errors import describe_validation_errors
from flashsight_common.fields import IGNORED_FIELDS, REFUSED_FIELDS
from flashsight_common.schemas import ChatCompletionRequest
from pydantic import ValidationError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HI = [{"role": "user", "content": "hi"}]


def refusal(body: dict[str, Any]) -> tuple[str, str | None]:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(body)
    return describe_validation_errors(caught.value.errors())


@pytest.mark.parametrize("field", sorted(IGNORED_FIELDS))
def test_ignored_fields_are_accepted_and_dropped(field: str) -> None:
    request = ChatCompletionRequest.model_validate({"messages": HI, field: "x"})
    assert field not in request.model_dump()


@pytest.mark.parametrize(
    ("field", "neutral", "asking"),
    [
        ("logprobs", False, True),
        ("top_logprobs", 0, 3),
        ("frequency_penalty", 0, 0.5),
        ("presence_penalty", 0.0, -1),
        ("modalities", ["text"], ["text", "audio"]),
        ("audio", None, {"voice": "alloy", "format": "wav"}),
        ("prediction", None, {"type": "content", "content": "x"}),
        ("web_search_options", None, {}),
        ("logit_bias", {}, {"50256": -100}),
        ("store", False, True),
        ("service_tier", "auto", "priority"),
        ("functions", None, [{"name": "f"}]),
        ("reasoning_effort", None, "high"),
    ],
)
def test_refused_fields_pass_only_when_they_ask_for_nothing(field: str, neutral: Any, asking: Any) -> None:
    ChatCompletionRequest.model_validate({"messages": HI, field: neutral})
    message, param = refusal({"messages": HI, field: asking})
    assert param == field
    assert message.startswith(f"{field}: not supported: ") and REFUSED_FIELDS[field].reason in message


def test_logprobs_zero_is_not_taken_for_false() -> None:
    assert refusal({"messages": HI, "logprobs": 0})[1] == "logprobs"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HI, "temprature": 0.2}, "temprature"),
        ({"messages": [{"role": "user", "content": "hi", "nme": "x"}]}, "messages.0.nme"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {}}]}]},
            "messages.0.content.cache_control",
        ),  # parts are parsed by the dispatch table: no index
        (
            {"messages": HI, "stream_options": {"include_usage": True, "chunk_size": 3}},
            "stream_options.chunk_size",
        ),
        (
            {"messages": HI, "response_format": {"type": "json_object", "schema": {}}},
            "response_format.schema",
        ),
        (
            {"messages": HI, "chat_template_kwargs": {"enable_thinking": True, "tokenize": False}},
            "chat_template_kwargs.tokenize",
        ),
    ],
)
def test_unknown_fields_are_refused_by_name_at_any_depth(body: dict[str, Any], param: str) -> None:
    message, got = refusal(body)
    assert got == param and "unknown field" in message and "docs/api.md" in message


def test_accepted_and_ignored_nested_fields() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "messages": [
                {
                    "role": "user",
                    "name": "alice",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,AA==", "detail": "high"},
                        },
                    ],
                },
            ],
            "stream_options": {"include_usage": True, "include_obfuscation": False},
            "chat_template_kwargs": {"enable_thinking": True},
        }
    )
    assert request.thinking_requested() is True and request.include_usage()


def test_the_docs_list_every_ignored_and_refused_field() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [f for f in [*IGNORED_FIELDS, *REFUSED_FIELDS] if f"`{f}`" not in text]
    assert not missing, f"docs/api.md does not list {missing}"
