from __future__ import annotations

import pytest
from vision.backends.gloss import gloss


@pytest.mark.parametrize(("text", "english"), [
    ("银行卡验证失败ERR_1003", "bank card verification failed ERR_1003"),
    ("状态:待补充地址", "status: address to be completed"),
    ("密码错误,还可尝试2次", "password error, attempts left: 2"),
    ("请更换银行卡后重试", "please change the bank card then retry"),
])
def test_known_chinese_is_glossed_word_by_word(text: str, english: str) -> None:
    assert gloss(text) == english


def test_no_gloss_when_any_chinese_word_is_unknown_or_there_is_no_chinese() -> None:
    assert gloss("购买方税号有误") is None  # 购买方 is not in the table: no half translation
    assert gloss("Payment declined") is None
