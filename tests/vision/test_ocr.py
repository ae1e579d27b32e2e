from __future__ import annotations

import random

from vision.backends.ocr import group_blocks, group_rows, line_of, normalise_text, reading_order, row_text

from tests.vision.lines import ORDER_LINES, line


def test_normalise_text_turns_full_width_punctuation_and_digits_into_ascii() -> None:
    assert normalise_text(" 订单号：２０２４ ") == "订单号:2024"
    assert normalise_text("￥8,650.00") == "¥8,650.00"


def test_line_of_takes_the_bounds_of_rapidocr_corner_points() -> None:
    made = line_of([[10, 20], [110, 22], [111, 50], [9, 48]], "金额：", 0.9)
    assert made.box == (9, 20, 111, 50)
    assert made.text == "金额:"


def test_reading_order_is_top_to_bottom_then_left_to_right_whatever_the_input_order() -> None:
    shuffled = ORDER_LINES[:]
    random.Random(3).shuffle(shuffled)
    texts = [item.text for item in reading_order(shuffled)]
    assert texts == [
        "订单详情", "订单状态:待发货", "订单号:2024052011223344", "下单时间:2024-05-2011:22:33",
        "实付金额", "¥1,299.00", "收件人", "张三",
    ]


def test_a_label_and_a_taller_value_on_one_visual_row_form_one_row() -> None:
    rows = group_rows([line("¥1,299.00", 555, 596, 705, 646), line("实付金额", 40, 606)])
    assert [row_text(row) for row in rows] == ["实付金额 ¥1,299.00"]


def test_lines_that_barely_overlap_vertically_are_separate_rows() -> None:
    rows = group_rows([line("上", 40, 100), line("下", 300, 120)])
    assert len(rows) == 2


def test_blocks_split_at_large_vertical_gaps() -> None:
    rows = group_rows([line("标题", 40, 0), line("第一行", 40, 40), line("第二行", 40, 80),
                       line("底部按钮", 40, 400)])
    blocks = group_blocks(rows)
    assert [[row_text(row) for row in block] for block in blocks] == [
        ["标题", "第一行", "第二行"], ["底部按钮"],
    ]
    assert group_blocks([]) == []
