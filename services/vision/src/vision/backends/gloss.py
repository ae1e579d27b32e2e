"""English glosses of the Chinese words business screens use for problems, so an English answer
can say what a quoted Chinese line means.

A gloss is given only when every Chinese character of the text is covered by the table:
a partial translation would put words in the screen's mouth. The quote itself is always
kept; the gloss goes beside it in brackets.
"""

from __future__ import annotations

import re

# Chinese term → English, longest terms tried first. Phrases before their parts
# (待补充地址 reads better as a whole than word by word).
GLOSSARY: dict[str, str] = {
    "待补充地址": "address to be completed", "待付款": "awaiting payment", "待支付": "awaiting payment",
    "待发货": "awaiting shipment", "待收货": "awaiting delivery", "待审核": "under review",
    "待确认": "awaiting confirmation", "待验证": "awaiting verification", "已取消": "cancelled",
    "补充地址": "complete the address", "更换银行卡": "change the bank card", "后重试": "then retry",
    "银行卡": "bank card", "信用卡": "credit card", "验证": "verification", "失败": "failed",
    "支付": "payment", "付款": "payment", "订单": "order", "状态": "status", "地址": "address",
    "收货": "delivery", "登录": "login", "密码": "password", "账号": "account", "账户": "account",
    "错误": "error", "异常": "abnormal", "已锁定": "locked", "锁定": "locked",
    "余额不足": "insufficient balance",
    "不足": "insufficient", "过期": "expired", "已过期": "expired", "无效": "invalid",
    "验证码": "verification code",
    "超时": "timed out", "网络": "network", "请": "please", "重试": "retry", "更换": "change",
    "联系客服": "contact customer service", "发票": "invoice", "开具": "issuing", "税号": "tax number",
    "有误": "is incorrect", "不正确": "is incorrect", "被拒绝": "declined", "拒绝": "declined",
    "还可尝试": "attempts left:", "次": "", "分钟": "minutes", "后": "after", "未通过": "not passed",
    "实名认证": "identity verification", "认证": "verification", "交易": "transaction",
    "码": "code", "代码": "code", "服务": "service", "暂不可用": "temporarily unavailable",
}
_TERMS = sorted(GLOSSARY, key=len, reverse=True)
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_SPACE_BEFORE_MARK = re.compile(r"\s+([,.;:!?])")


def _gloss_run(run: str) -> str | None:
    words: list[str] = []
    position = 0
    while position < len(run):
        term = next((t for t in _TERMS if run.startswith(t, position)), None)
        if term is None:
            return None
        if GLOSSARY[term]:
            words.append(GLOSSARY[term])
        position += len(term)
    return " ".join(words)


def gloss(text: str) -> str | None:
    """``text`` with its Chinese rendered in English, or None when any Chinese word is unknown.

    >>> gloss("银行卡验证失败 ERR_1003")
    'bank card verification failed ERR_1003'
    """
    if not _CJK_RUN.search(text):
        return None
    pieces: list[str] = []
    end = 0
    for match in _CJK_RUN.finditer(text):
        english = _gloss_run(match.group(0))
        if english is None:
            return None
        pieces += [text[end:match.start()], f" {english} "]
        end = match.end()
    pieces.append(text[end:])
    return _SPACE_BEFORE_MARK.sub(r"\1", " ".join("".join(pieces).split()))
