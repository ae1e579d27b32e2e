"""The seed articles' question on the embedded stack with its defaults: grounded answers on both routes.

A real Redis, vision (ocr-lite), reasoner (SmolLM2-135M) and gateway, nothing configured:
the gateway's default ``GATEWAY_REASONER_LANGUAGES=en`` is what ``make run`` ships. The
screenshot is ``examples/order_blocked.png``, the README's exchange.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.evalset.cases import CASES
from devkit.screens import as_data_url, order_screenshot
from devkit.stack import running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED_IMAGE = Path(__file__).resolve().parents[2] / "examples" / "order_blocked.png"


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with running_stack() as stack, httpx.Client(base_url=stack.url, timeout=300) as http:
        yield http


def chat(image_url: str, question: str, model: str = "auto") -> dict[str, Any]:
    content = [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": question}]
    return {"model": model, "messages": [{"role": "user", "content": content}], "temperature": 0}


def fresh_order() -> str:
    return as_data_url(order_screenshot(order_no=str(uuid.uuid4().int)[:16]))


def test_a_chinese_cascade_question_is_answered_by_vision_since_smollm2_writes_english_only(
    client: httpx.Client,
) -> None:
    response = client.post("/v1/chat/completions", json=chat(fresh_order(), "为什么这个订单还没有发货?"))
    assert response.status_code == 200, response.text
    body = response.json()
    meta = body["flashsight"]
    route = (meta["route"], meta["route_reason"], meta["matched_keyword"])
    assert route == ("direct", "reasoner_language", "为什么")
    assert "推理模型只擅长英文" in meta["notice"] and meta["degraded"] is False
    assert body["model"] == "ocr-lite" and meta["models"]["reasoner"] is None
    assert "待发货" in body["choices"][0]["message"]["content"]  # the screenshot's status, in Chinese


@pytest.mark.parametrize(("question", "says"), [
    ("为什么我的订单还没有发货?",
     ("状态: 待补充地址", "银行卡验证失败ERR_1003", "· 补充地址", "错误码 ERR_1003")),
    ("Why has my order not shipped yet?", ("待补充地址 (status: address to be completed)",
                                           "银行卡验证失败ERR_1003 (bank card verification failed",
                                           "complete the address", "contact support quoting ERR_1003")),
])
def test_the_seed_question_names_the_blocking_facts_on_both_routes(
    client: httpx.Client, question: str, says: tuple[str, ...]
) -> None:
    """The README's exchange: the seed articles' order screenshot, asked why it has not shipped."""
    image = as_data_url(SEED_IMAGE.read_bytes())
    for model in ("direct", "auto"):  # auto: the keyword picks cascade, the language gate vision
        response = client.post("/v1/chat/completions", json=chat(image, question, model))
        assert response.status_code == 200, response.text
        body = response.json()
        answer = body["choices"][0]["message"]["content"]
        assert all(fact in answer for fact in says), f"{model}: {answer}"
        meta = body["flashsight"]
        assert body["model"] == "ocr-lite" and meta["models"]["reasoner"] is None
        if model == "auto":
            assert (meta["route"], meta["route_reason"]) == ("direct", "reasoner_language")
            assert meta["notice"] and meta["matched_keyword"] in ("为什么", "why")


def test_an_english_question_about_an_english_screen_still_goes_to_smollm2(client: httpx.Client) -> None:
    declined = next(case for case in CASES if case.name == "payment_declined_en")
    response = client.post("/v1/chat/completions",
                           json=chat(as_data_url(declined.png()), "Why was my payment declined?"))
    assert response.status_code == 200, response.text
    body = response.json()
    meta = body["flashsight"]
    assert (meta["route"], meta["route_reason"], meta["matched_keyword"]) == ("cascade", "keyword", "why")
    assert body["model"] == "smollm2-135m-instruct" and meta["notice"] is None
    assert body["choices"][0]["message"]["content"].strip()
