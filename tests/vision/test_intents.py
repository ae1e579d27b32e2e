from __future__ import annotations

import pytest
from vision.backends.intents import classify_intent


@pytest.mark.parametrize(("question", "kind"), [
    ("Describe this image", "caption"),
    ("描述一下这张图片", "caption"),
    ("Please caption it", "caption"),
    ("summarise the screenshot", "caption"),
    ("", "caption"),
    ("订单号是多少?", "field"),
    ("what is the invoice number?", "field"),
    ("合计金额", "field"),
    ("状态是什么", "field"),
    ("图中有哪些物体", "unseeable"),
    ("图中有几只猫?", "unseeable"),
    ("what animal is this", "unseeable"),
    ("is the person smiling", "unseeable"),
    ("收货人是谁", "field"),  # "人" inside a field name is not a question about people
    ("耳机是什么牌子", "generic"),
    ("what's the category?", "generic"),  # "cat" inside "category" is not a cat
    ("为什么我的订单还没有发货?", "diagnose"),
    ("付款失败了怎么办", "diagnose"),
    ("What should I do?", "diagnose"),
    ("Why is the amount wrong?", "diagnose"),  # a diagnosis, whatever field it names
    ("What went wrong with my payment?", "diagnose"),
])
def test_classify_intent(question: str, kind: str) -> None:
    assert classify_intent(question).kind == kind


def test_the_gateways_caption_prompt_is_a_caption_even_when_it_mentions_fields() -> None:
    prompt = ("Describe this image for someone who cannot see it: what kind of image it is, its layout, "
              "and all the text it contains in reading order. Be factual and complete; do not guess.")
    assert classify_intent(prompt).kind == "caption"
    assert classify_intent("Describe the receipt, including the total and the date").kind == "caption"
    assert classify_intent("请描述这张发票，包括金额").kind == "caption"
    assert classify_intent("发票金额是多少？请描述").kind == "field"


def test_a_field_intent_names_its_field_and_a_keyword_intent_its_keyword() -> None:
    assert classify_intent("实付金额是多少").field == "amount"
    assert classify_intent("这只猫是什么品种").keyword == "猫"
    assert classify_intent("发票号码是多少，出了什么问题?").field == "invoice_number"
