"""gateway.answer.upstream_bodies: what vision and the reasoner are sent."""

from __future__ import annotations

from gateway.answer.prompts import CAPTION_PARAMS
from gateway.answer.upstream_bodies import caption_body, reasoner_body, vision_body
from gateway.schemas import GatewayChatRequest

IMAGE = "data:image/png;base64,AAAA"


def _request() -> GatewayChatRequest:
    return GatewayChatRequest.model_validate(
        {
            "model": "auto",
            "temperature": 0.3,
            "max_tokens": 50,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": IMAGE}},
                        {"type": "text", "text": "why was it refused?"},
                    ],
                }
            ],
        }
    )


def test_vision_gets_the_conversation_with_its_images_and_the_callers_sampling() -> None:
    body = vision_body(_request(), "ocr-lite")
    assert body["model"] == "ocr-lite" and body["temperature"] == 0.3 and body["max_tokens"] == 50
    assert body["messages"][0]["content"][0]["image_url"]["url"] == IMAGE


def test_the_reasoner_gets_text_only_with_the_captions_before_the_question() -> None:
    body = reasoner_body(_request(), ["a refund form"], "smollm2")
    assert body["model"] == "smollm2" and body["max_tokens"] == 50
    text = body["messages"][-1]["content"]
    assert "a refund form" in text and text.index("a refund form") < text.index("why was it refused?")
    assert IMAGE not in str(body["messages"])


def test_a_caption_request_uses_the_fixed_caption_sampling() -> None:
    body = caption_body("Describe.", IMAGE, "ocr-lite", max_tokens=64)
    assert body["max_tokens"] == 64 and body["model"] == "ocr-lite"
    assert all(body[k] == v for k, v in CAPTION_PARAMS.items())
    assert body["messages"][0]["content"][1]["image_url"]["url"] == IMAGE


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def _tools_request() -> GatewayChatRequest:
    return GatewayChatRequest.model_validate(
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": [WEATHER],
            "tool_choice": "auto",
            "enable_thinking": True,
        }
    )


def test_the_stage_that_calls_gets_the_tool_fields_history_and_thinking_switch() -> None:
    for body in (vision_body(_tools_request(), "glm"), reasoner_body(_tools_request(), [], "smollm2")):
        assert body["tools"] == [WEATHER] and body["tool_choice"] == "auto"
        assert body["chat_template_kwargs"] == {"enable_thinking": True} and "enable_thinking" not in body
        assert body["messages"][1]["tool_calls"] == [CALL]
        assert body["messages"][2]["tool_call_id"] == "call_1"


def test_vision_in_the_reasoners_place_gets_no_tools_and_the_history_as_text() -> None:
    body = vision_body(_tools_request(), "ocr-lite", with_tools=False)
    assert "tools" not in body and "tool_choice" not in body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert all("tool_calls" not in m and "tool_call_id" not in m for m in body["messages"])
