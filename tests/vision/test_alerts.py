from __future__ import annotations

import pytest
from vision.backends.alerts import classify_row, error_code, find_alerts
from vision.backends.ocr import group_rows

from tests.vision.lines import line


@pytest.mark.parametrize(("text", "kinds"), [
    ("银行卡验证失败ERR_1003", {"problem"}),
    ("状态:待补充地址", {"pending"}),
    ("订单状态:待发货", {"pending"}),
    ("请更换银行卡后重试", {"remedy"}),
    ("Payment declined", {"problem"}),
    ("Status: Pending payment", {"pending"}),
    ("Please use another card and try again", {"remedy"}),
    ("Payment failed. Please try again", {"problem", "remedy"}),
    ("密码错误,还可尝试2次", {"problem"}),
    # Ordinary rows, including labels that share words with remedies or codes.
    ("订单号:2024031512345", set()),
    ("联系电话:138-0013-8000", set()),
    ("更新时间:2024-05-20", set()),
    ("Invoice No: INV-2024-0042", set()),
    ("金额:¥5200.00", set()),
    ("订单状态:已发货", set()),
])
def test_rows_are_classed_by_what_their_words_mean(text: str, kinds: set[str]) -> None:
    assert classify_row(text) == kinds


@pytest.mark.parametrize(("text", "code"), [
    ("银行卡验证失败ERR_1003", "ERR_1003"),  # OCR dropped the space: still found
    ("银行卡余额不足 E-2051", "E-2051"),
    ("Error code: 402", "402"),
    ("错误码:A17", "A17"),
    ("Invoice No: INV-2024-0042", None),
    ("订单号:2024031512345", None),
])
def test_error_codes(text: str, code: str | None) -> None:
    assert error_code(text) == code


def test_a_pending_status_naming_the_users_action_is_a_todo_in_the_screens_words() -> None:
    rows = group_rows([
        line("订单号:2024031512345", 40, 130),
        line("状态:待补充地址", 40, 210),
        line("银行卡验证失败ERR_1003", 40, 290),
        line("订单状态:待发货", 40, 370),
    ])
    alerts = find_alerts(rows)
    assert [(a.text, a.todo, a.code) for a in alerts] == [
        ("状态:待补充地址", "补充地址", None),
        ("银行卡验证失败ERR_1003", None, "ERR_1003"),
        ("订单状态:待发货", None, None),  # waiting on the shop, not on the user
    ]
