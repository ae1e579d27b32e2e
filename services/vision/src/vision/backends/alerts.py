"""Which rows of a screenshot say something is wrong, pending or to be done: picked by meaning.

A "why / what is wrong / what should I do" question is answered from these rows, not
from the rows that share words with the question (a question says 发货, the screen says
待补充地址). Each row read is classed by what its words mean:

* ``problem``: error or warning text (失败, 错误, 异常, 无效, failed, declined, error, …)
  or an error code (``ERR_1003``, ``E-42``);
* ``pending``: a status waiting on something (``待补充地址``, ``待付款``, pending, awaiting);
* ``remedy``: the screen telling the user what to do (请更换银行卡后重试, retry, contact …).

A pending status whose waiting part is an action the user takes (待 **补充地址**, 待 **付款**)
also yields that action as a to-do: the screen's own words, not a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from vision.backends.ocr import OcrLine, row_text

_PROBLEM_ZH = re.compile(
    "失败|错误|有误|异常|失效|过期|拒绝|被拒|无效|不足|未通过|不通过|不正确|超时|冻结|锁定|驳回|"
    "不支持|无法|不能|未能|缺少|缺失|不完整|风险|警告|受限|暂停|逾期|不匹配"
)
_PROBLEM_EN = re.compile(
    r"\b(?:fail(?:ed|ure|s)?|errors?|declined|denied|rejected|invalid|expired|insufficient|"
    r"incorrect|wrong|locked|timed\s?out|timeout|unable|cannot|can't|couldn't|suspended|blocked|"
    r"missing|incomplete|overdue|warning|unverified|mismatch)\b",
    re.IGNORECASE,
)
# Not \b: Python counts CJK as word characters, and OCR often drops the space in "失败ERR_1003".
ERROR_CODE = re.compile(r"(?<![A-Za-z0-9])(?:ERR|ERROR|E|EC|CODE)[_-]?\d{2,6}(?![A-Za-z0-9])")
_CODE_AFTER_WORD = re.compile(
    r"(?:错误码|错误代码|代码|error\s*code|code)\s*[:#]?\s*([A-Z0-9_-]{2,12})", re.IGNORECASE
)
_PENDING_ZH = re.compile("(?:^|[:\\s])(?:待|未|尚未)([\u3400-\u9fff]{1,8})")
_PENDING_EN = re.compile(
    r"\b(?:pending|awaiting|on\s?hold|action\s?required|required|needs?\s|not\s?yet)", re.IGNORECASE
)
# Not 联系 / 更新 / 修改 / 绑定 alone: they also start labels (联系电话, 更新时间).
_REMEDY_ZH = re.compile("^请|请您|建议|需要|点击|前往|重试|重新|更换|补充|完善|填写|核对|联系客服")
_REMEDY_EN = re.compile(
    r"\b(?:please|retry|try\s?again|try\s?another|use\s?(?:another|a\s?different)|update\s?your|"
    r"contact\s?(?:us|support|your)|"
    r"re-?enter|reset|add\s?(?:a|an|your)|complete\s?your|check\s?your|verify\s?your)\b",
    re.IGNORECASE,
)
# What follows 待/未 when it is the user's own action (待补充地址 → 补充地址); 待发货 waits on the shop.
_USER_ACTIONS = ("补充", "填写", "完善", "付款", "支付", "确认", "上传", "绑定", "激活", "实名", "认证",
                 "验证", "修改", "更新", "评价", "收货")
# A status key before its value ("订单状态:待补充地址"), stripped to find the waiting part.
_STATUS_KEY = re.compile(r"^[^:]{0,8}(?:状态|status|state)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One row that matters to a "what is wrong" question, with what it means."""

    text: str
    kinds: frozenset[str]
    """Any of ``problem``, ``pending``, ``remedy``."""
    lines: tuple[OcrLine, ...]
    code: str | None = None
    """The error code the row names (``ERR_1003``), if any."""
    todo: str | None = None
    """The user action a pending status waits for (``补充地址``), in the screen's words."""


def error_code(text: str) -> str | None:
    """The error code ``text`` names: ``ERR_1003``-like, or what follows 错误码 / error code."""
    match = ERROR_CODE.search(text)
    if match:
        return match.group(0)
    match = _CODE_AFTER_WORD.search(text)
    return match.group(1) if match and any(ch.isdigit() for ch in match.group(1)) else None


def _todo(text: str) -> str | None:
    value = _STATUS_KEY.sub("", text)
    match = _PENDING_ZH.search(value)
    if match and match.group(1).startswith(_USER_ACTIONS):
        return match.group(1)
    return None


def classify_row(text: str) -> frozenset[str]:
    """The kinds of alert ``text`` carries (empty: an ordinary row)."""
    kinds = set()
    if _PROBLEM_ZH.search(text) or _PROBLEM_EN.search(text) or error_code(text):
        kinds.add("problem")
    if _PENDING_ZH.search(_STATUS_KEY.sub("", text)) or _PENDING_EN.search(text):
        kinds.add("pending")
    if _REMEDY_ZH.search(text) or _REMEDY_EN.search(text):
        kinds.add("remedy")
    # A pending status naming the user's action is a to-do, not a remedy sentence.
    if "pending" in kinds and _todo(text) and not text.lstrip().startswith("请"):
        kinds.discard("remedy")
    return frozenset(kinds)


def find_alerts(rows: Sequence[Sequence[OcrLine]]) -> list[AlertRow]:
    """The rows that say something is wrong, pending or to be done, in reading order."""
    alerts = []
    for row in rows:
        text = row_text(row)
        kinds = classify_row(text)
        if kinds:
            alerts.append(AlertRow(text, kinds, tuple(row), error_code(text), _todo(text)))
    return alerts
