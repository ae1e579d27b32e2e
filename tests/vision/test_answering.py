from __future__ import annotations

import pytest
from vision.backends.answering import ImageReading, answer_question
from vision.backends.facts import ColourShare, ImageFacts
from vision.backends.ocr import group_rows

from tests.vision.lines import ORDER_LINES, line

FACTS = ImageFacts(750, 1000, (ColourShare("白色", "white", 0.7), ColourShare("红色", "red", 0.1)))
ORDER = ImageReading(FACTS, group_rows(ORDER_LINES))
BLANK = ImageReading(ImageFacts(640, 480, (ColourShare("绿色", "green", 0.5),)), [])


def test_a_chinese_field_question_gets_a_short_chinese_answer_with_the_value() -> None:
    answer = answer_question("订单号是多少?", [ORDER])
    assert answer.pieces[0] == "订单号是 2024052011223344。"
    assert len(answer.pieces) >= 2
    assert answer.confidence == pytest.approx(1.0)


def test_an_english_field_question_gets_an_english_answer() -> None:
    answer = answer_question("What is the amount paid?", [ORDER])
    assert answer.pieces[0] == "The amount is ¥1,299.00. "
    assert answer.confidence == pytest.approx((0.99 + 0.90) / 2)  # the label and the value lines


def test_a_field_that_is_not_there_is_said_to_be_missing_and_the_text_read_is_listed() -> None:
    answer = answer_question("发票号码是多少?", [ORDER])
    assert answer.text.startswith("图中没有找到发票号码。")
    assert "订单号:2024052011223344" in answer.text


def test_caption_gives_size_orientation_colours_layout_and_the_text_in_reading_order() -> None:
    text = answer_question("Describe this image", [ORDER]).text
    assert "750×1000 portrait" in text
    assert "white and red" in text
    assert "8 lines of text" in text
    assert text.index("订单详情") < text.index("订单号:2024052011223344") < text.index("实付金额 ¥1,299.00")


def test_chinese_caption_of_an_image_without_text_says_so() -> None:
    text = answer_question("描述这张图片", [BLANK]).text
    assert "640×480" in text and "横版" in text and "绿色" in text
    assert "没有识别到文字" in text
    assert answer_question("描述这张图片", [BLANK]).confidence is None


def test_questions_about_what_it_cannot_see_are_answered_honestly() -> None:
    answer = answer_question("图中有几只猫?", [ORDER])
    assert "只能读取图中的文字" in answer.text
    assert "看不到" in answer.text
    assert "订单号:2024052011223344" in answer.text  # and what it did read
    assert "猫" not in answer.text.replace("图中有几只猫", "")  # it does not invent a count


def test_english_unseeable_question_is_answered_in_english() -> None:
    assert "cannot see objects, people, animals" in answer_question("is the person smiling?", [ORDER]).text


def test_no_image_asks_for_one_in_the_question_language() -> None:
    assert "请附上一张图片" in answer_question("订单号是多少?", []).text
    assert "attach an image" in answer_question("What is the order number?", []).text


def test_generic_questions_get_the_rows_sharing_words_with_them() -> None:
    rows = group_rows([line("商品:无线降噪耳机Pro×1", 40, 0), line("确认收货", 40, 300)])
    reading = ImageReading(FACTS, rows)
    answer = answer_question("耳机是什么牌子?", [reading])
    assert answer.text == "与问题最相关的文字：\n商品:无线降噪耳机Pro×1\n"


def test_several_images_are_numbered_in_a_caption() -> None:
    text = answer_question("describe", [ORDER, BLANK]).text
    assert "Image 1: " in text and "Image 2: " in text
