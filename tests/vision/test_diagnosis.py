from __future__ import annotations

from vision.backends.answering import ImageReading, answer_question
from vision.backends.facts import ColourShare, ImageFacts
from vision.backends.ocr import group_rows

from tests.vision.lines import ORDER_LINES, line

FACTS = ImageFacts(900, 470, (ColourShare("白色", "white", 0.8),))
# The seed articles' order screen, as OCR reads it.
SEED = ImageReading(FACTS, group_rows([
    line("订单详情", 40, 30),
    line("订单号:2024031512345", 40, 130),
    line("状态:待补充地址", 40, 210),
    line("银行卡验证失败ERR_1003", 40, 290, score=0.9),
    line("金额:¥5200.00", 40, 370),
]))
PAYMENT = ImageReading(FACTS, group_rows([
    line("支付失败", 40, 130),
    line("银行卡余额不足E-2051", 40, 210),
    line("请更换银行卡后重试", 40, 290),
]))
SHIPPED = ImageReading(FACTS, group_rows(ORDER_LINES))  # 订单状态:待发货, nothing wrong


def test_why_not_shipped_in_chinese_names_the_blocking_rows_the_todo_and_the_code_to_quote() -> None:
    text = answer_question("为什么我的订单还没有发货?", [SEED]).text
    assert text.startswith("根据图中的文字，问题在于：")
    assert "状态:待补充地址" in text and "银行卡验证失败ERR_1003" in text
    assert "· 补充地址" in text  # the screen's own to-do
    assert "没有写明如何处理“银行卡验证失败ERR_1003”" in text  # no invented remedy ...
    assert "错误码 ERR_1003" in text  # ... but the code to quote
    assert "订单号 2024031512345" in text and "¥5200.00" in text
    assert "订单详情" not in text  # the title is not a fact that matters


def test_the_same_question_in_english_is_answered_in_english_quoting_and_glossing_the_screen() -> None:
    answer = answer_question("Why has my order not shipped yet?", [SEED])
    assert answer.text.startswith("According to the text in the image")
    assert "银行卡验证失败ERR_1003 (bank card verification failed ERR_1003)" in answer.text
    assert "状态:待补充地址 (status: address to be completed)" in answer.text
    assert "contact support quoting ERR_1003" in answer.text
    assert "order number 2024031512345" in answer.text
    assert answer.confidence is not None and answer.confidence < 1.0  # rests on the lines quoted


def test_a_remedy_on_the_screen_is_quoted_and_nothing_is_added() -> None:
    text = answer_question("What should I do?", [PAYMENT]).text
    assert "请更换银行卡后重试 (please change the bank card then retry)" in text
    assert "does not say" not in text
    assert "E-2051" in text


def test_a_screen_waiting_on_the_shop_names_its_status_and_invents_no_failure() -> None:
    text = answer_question("我的订单有什么问题?", [SHIPPED]).text
    assert "订单状态:待发货" in text  # the status is what there is to say
    assert "失败" not in text and "ERR" not in text


def test_the_order_number_is_named_only_when_the_question_is_about_an_order() -> None:
    assert "2024031512345" not in answer_question("我应该怎么办?", [SEED]).text
    assert "2024031512345" in answer_question("这个订单怎么办?", [SEED]).text
