from __future__ import annotations

import pytest
from vision.backends.fields import extract_pairs, field_asked, find_field, find_key_named, split_key_value
from vision.backends.ocr import group_rows

from tests.vision.lines import ORDER_LINES, line

ROWS = group_rows(ORDER_LINES)


@pytest.mark.parametrize(("question", "field"), [
    ("订单号是多少?", "order_number"),
    ("What is the order number?", "order_number"),
    ("invoice no.?", "invoice_number"),
    ("实付金额是多少", "amount"),
    ("一共多少钱", "amount"),
    ("What's the total amount?", "amount"),
    ("下单时间是什么时候", "date"),
    ("订单状态", "status"),
    ("what is the status", "status"),
    ("联系电话?", "phone"),
    ("收货人是谁", "buyer"),
    ("图中有几只猫?", None),
    ("Where is the cat?", None),
    ("寄到哪里?", "address"),
    ("what is the category?", None),  # "cat" inside a word is not the word
])
def test_field_asked_picks_the_longest_matching_key(question: str, field: str | None) -> None:
    assert field_asked(question) == field


def test_split_key_value_needs_a_word_like_key_and_keeps_later_colons_in_the_value() -> None:
    assert split_key_value("下单时间:2024-05-2011:22:33") == ("下单时间", "2024-05-2011:22:33")
    assert split_key_value("11:22:33") is None
    assert split_key_value("订单号:") == ("订单号", "")
    assert split_key_value("没有冒号") is None


def test_extract_pairs_reads_colon_lines_labels_with_values_to_the_right_and_below() -> None:
    pairs = {pair.key: pair.value for pair in extract_pairs(ROWS)}
    assert pairs == {
        "订单状态": "待发货",
        "订单号": "2024052011223344",
        "下单时间": "2024-05-2011:22:33",
        "实付金额": "¥1,299.00",
        "收件人": "张三",
    }


def test_a_title_beside_a_subtitle_is_not_a_field() -> None:
    rows = group_rows([line("增值税电子普通发票", 280, 55), line("ELECTRONICINVOICE", 600, 58)])
    assert extract_pairs(rows) == []


def test_find_field_returns_the_value_and_the_lines_it_came_from() -> None:
    pair = find_field(ROWS, "amount")
    assert pair is not None
    assert (pair.key, pair.value) == ("实付金额", "¥1,299.00")
    assert [item.text for item in pair.lines] == ["实付金额", "¥1,299.00"]


def test_find_field_prefers_the_exact_key_over_one_that_only_contains_it() -> None:
    rows = group_rows([line("订单号码说明:见下方", 40, 0), line("订单号:123456", 40, 50)])
    pair = find_field(rows, "order_number")
    assert pair is not None and pair.value == "123456"


def test_find_field_reads_a_value_when_ocr_lost_the_colon() -> None:
    pair = find_field(group_rows([line("订单号2024052011223344", 40, 0)]), "order_number")
    assert pair is not None and pair.value == "2024052011223344"


def test_find_field_matches_english_keys_without_spaces() -> None:
    rows = group_rows([line("InvoiceNo.:No.04452817", 40, 0), line("Total", 40, 60), line("$12.50", 400, 60)])
    invoice = find_field(rows, "invoice_number")
    total = find_field(rows, "amount")
    assert invoice is not None and invoice.value == "No.04452817"
    assert total is not None and total.value == "$12.50"


def test_find_field_is_none_when_the_screen_does_not_show_it() -> None:
    assert find_field(ROWS, "invoice_number") is None


def test_find_key_named_matches_a_key_the_question_quotes_literally() -> None:
    rows = group_rows([line("Payment:Alipay", 40, 0)])
    pair = find_key_named(rows, "payment是什么?")
    assert pair is not None and pair.value == "Alipay"
