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
