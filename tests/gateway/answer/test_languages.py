"""The reasoner's languages: a cascade question it cannot write goes to vision, said in the metadata."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from gateway.answer.languages import (
    evidence_language,
    gate_evidence,
    gate_language,
    language_notice,
    question_language,
)
from gateway.answer.route_choice import RouteDecision
from gateway.config import GatewaySettings
from gateway.schemas import DEGRADED_NOTICE
from pydantic import ValidationError

from devkit.stub_upstream import StubUpstream
from tests.gateway.conftest import VISION_MODEL, chat_body, gateway_client, unique_png

CASCADE = RouteDecision("cascade", "keyword", "为什么")


def test_question_language() -> None:
    assert question_language("为什么我的订单还没有发货?") == "zh"
    assert question_language("Why has order 2024031512345 not shipped?") == "en"
    assert question_language("ERR_1003?") == "en"


def test_the_gate_turns_only_cascade_questions_in_other_languages_to_vision() -> None:
    gated = gate_language(CASCADE, "为什么没有发货?", ("en",))
    assert gated == RouteDecision("direct", "reasoner_language", "为什么")
    assert gate_language(CASCADE, "Why not shipped?", ("en",)) == CASCADE
    assert gate_language(CASCADE, "为什么没有发货?", ("zh", "en")) == CASCADE  # GLM writes Chinese
    assert gate_language(CASCADE, "为什么没有发货?", ("*",)) == CASCADE
    no_image = RouteDecision("cascade", "no_image")
    assert gate_language(no_image, "你好", ("en",)) == no_image  # no vision answer to give instead
    direct = RouteDecision("direct", "default")
    assert gate_language(direct, "订单号是多少?", ("en",)) == direct


def test_the_notice_says_which_languages_the_reasoner_writes_in_both_languages() -> None:
    notice = language_notice("为什么?", ("en",))
    assert "推理模型只擅长英文" in notice and "中文问题" in notice
    assert "the reasoner writes English only" in notice and "Chinese question" in notice


def test_the_setting_is_a_comma_separated_list_checked_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GatewaySettings().answer.reasoner_languages == ("en",)  # the embedded SmolLM2-135M
    monkeypatch.setenv("GATEWAY_REASONER_LANGUAGES", "ZH, en")
    assert GatewaySettings().answer.reasoner_languages == ("zh", "en")
    monkeypatch.setenv("GATEWAY_REASONER_LANGUAGES", "zh,fr")
    with pytest.raises(ValidationError, match=r"unknown reasoner language\(s\) \['fr'\]; use .*zh, en, \*"):
        GatewaySettings()


async def post(client: Any, body: dict[str, Any]) -> Any:
    return await client.post("/v1/chat/completions", json=body)


async def test_an_english_only_reasoner_never_gets_a_chinese_question(
    make_settings: Callable[..., GatewaySettings], vision: StubUpstream, reasoner: StubUpstream
) -> None:
    async with gateway_client(make_settings(reasoner_languages="en")) as client:
        zh = await post(client, chat_body("为什么我的订单还没有发货?", unique_png()))
        forced = await post(client, chat_body("为什么?", unique_png(), model="cascade"))
        en = await post(client, chat_body("Why has my order not shipped?", unique_png()))
    assert zh.status_code == 200, zh.text
    body = zh.json()
    meta = body["flashsight"]
    route = (meta["route"], meta["route_reason"], meta["matched_keyword"])
    assert route == ("direct", "reasoner_language", "为什么")
    assert meta["degraded"] is False and "推理模型只擅长英文" in meta["notice"]
    assert meta["models"] == {"vision": VISION_MODEL, "reasoner": None}
    assert body["model"] == VISION_MODEL and body["choices"][0]["message"]["content"] == "订单号是 12345"
    assert zh.headers["X-FlashSight-Route"] == "direct"
    # Vision got the user's own question (not the caption prompt): it answers it directly.
    asked = json.dumps(vision.chat_requests()[0]["messages"], ensure_ascii=False)
    assert "为什么我的订单还没有发货?" in asked
    assert forced.json()["flashsight"]["route_reason"] == "reasoner_language"
    assert en.json()["flashsight"]["route"] == "cascade"
    assert len(reasoner.chat_requests()) == 1  # only the English question reached it


async def test_a_streamed_gated_answer_carries_the_notice_in_the_metadata_not_the_text(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    async with gateway_client(make_settings(reasoner_languages="en")) as client:
        resp = await post(client, {**chat_body("为什么?", unique_png()), "stream": True})
    events = [json.loads(block[6:]) for block in resp.text.split("\n\n")
              if block.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    assert text == "订单号是 12345" and DEGRADED_NOTICE not in text
    meta = events[-1]["flashsight"]
    assert meta["route_reason"] == "reasoner_language" and "English only" in meta["notice"]


CHINESE_SCREEN = (
    "This is a 900×470 landscape image; its main colours are white and red. In reading order:\n"
    "订单号:2024031512345\n状态:待补充地址\n银行卡验证失败ERR_1003\n"
)


def test_the_evidence_language_is_that_of_the_image_text_not_of_the_captions_framing() -> None:
    assert evidence_language([CHINESE_SCREEN]) == "zh"
    assert evidence_language(["This is a 900×470 image.\nPayment declined\nError code: ERR_402"]) == "en"
    assert evidence_language(["Order No: A-77120\nShop: 淘宝 flagship store, Shanghai"]) == "en"
    cascade = RouteDecision("cascade", "keyword", "why")
    gated = RouteDecision("direct", "reasoner_language", "why")
    assert gate_evidence(cascade, [CHINESE_SCREEN], ("en",)) == gated
    assert gate_evidence(cascade, [CHINESE_SCREEN], ("zh", "en")) == cascade


async def test_an_english_question_about_a_chinese_screen_is_answered_by_vision(
    make_settings: Callable[..., GatewaySettings], vision: StubUpstream, reasoner: StubUpstream
) -> None:
    vision.behaviour.caption = CHINESE_SCREEN
    async with gateway_client(make_settings(reasoner_languages="en")) as client:
        plain = await post(client, chat_body("Why has my order not shipped yet?", unique_png()))
        streamed = await post(client, chat_body("Why has it not shipped?", unique_png(), stream=True))
    meta = plain.json()["flashsight"]
    route = (meta["route"], meta["route_reason"], meta["matched_keyword"])
    assert route == ("direct", "reasoner_language", "why")
    assert "the image's text is Chinese" in meta["notice"] and "图中文字是中文" in meta["notice"]
    assert meta["caption_cache"] == "miss"  # the caption was read to find its language
    assert plain.json()["model"] == VISION_MODEL and plain.headers["X-FlashSight-Route"] == "direct"
    assert '"route_reason": "reasoner_language"' in streamed.text.replace('":"', '": "')
    assert reasoner.chat_requests() == []
