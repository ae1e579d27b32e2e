"""The evaluation set: screenshots, questions in Chinese and English, and the facts each answer needs.

A fact is a string the answer must contain (compared without spaces or case, as OCR drops
spaces): what the screen says is wrong, the code to quote, what it says to do. Facts are
quoted as the screen writes them, also for English questions about Chinese screens (the
answer quotes the screen). ``absent`` lists what a grounded answer must not claim (a
problem on a screen that shows none).

``SEED`` is the seed articles' scenario: an order that has not shipped because the
address is incomplete and the bank-card check failed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from PIL import Image

from devkit.evalset.screens import chart_screen, text_screen


@dataclass(frozen=True, slots=True)
class Question:
    """One question about a screen, its language, and the facts its answer must name."""

    lang: str
    text: str
    facts: tuple[str, ...]
    absent: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Case:
    """A drawn screenshot and the questions asked about it."""

    name: str
    kind: str
    draw: Callable[[], Image.Image]
    questions: tuple[Question, ...] = field(default_factory=tuple)
    screen: tuple[str, ...] = ()
    """The text drawn on the screen (a quote of it is not the answer's own language)."""

    def png(self) -> bytes:
        return _png(self.name)


_BLUE = (40, 70, 200)


def _screen(name: str, kind: str, title: str, rows: tuple[str, ...], *questions: Question,
            alerts: tuple[int, ...] = (), accent: tuple[int, int, int] | None = None) -> Case:
    """A case on an app screen: a title bar over ``rows`` (``alerts``: rows drawn in red)."""
    colour = accent or (230, 67, 45)
    return Case(name, kind, lambda: text_screen(title, rows, accent=colour, alert_rows=alerts),
                questions, (title, *rows))


def _chart(name: str, title: str, labels: tuple[str, ...], values: tuple[int, ...],
           *questions: Question) -> Case:
    return Case(name, "chart", lambda: chart_screen(title, labels, values), questions, (title, *labels))


SEED = _screen(
    "seed_order", "order", "订单详情",
    ("订单号: 2024031512345", "状态: 待补充地址", "银行卡验证失败 ERR_1003", "金额: ¥5200.00"),
    Question("zh", "为什么我的订单还没有发货?", ("待补充地址", "银行卡验证失败", "ERR_1003", "补充地址")),
    Question("en", "Why has my order not shipped yet?", ("待补充地址", "银行卡验证失败", "ERR_1003")),
    Question("zh", "我应该怎么办?", ("补充地址", "ERR_1003")),
    Question("en", "What should I do?", ("补充地址", "ERR_1003")),
    alerts=(2,),
)

CASES: tuple[Case, ...] = (
    SEED,
    _screen(
        "order_shipped", "order", "订单详情",
        ("订单号: 2024110800917", "订单状态: 已发货", "物流公司: 顺丰速运", "实付金额: ¥368.00"),
        Question("zh", "我的订单有什么问题吗?", ("已发货",), absent=("失败", "ERR")),
        Question("en", "Is anything wrong with my order?", ("已发货",), absent=("failed",)),
    ),
    _screen(
        "order_unpaid_en", "order", "Order details",
        ("Order No: A-77120", "Status: Pending payment", "Total: $89.90",
         "Please complete payment within 30 minutes"),
        Question("en", "Why hasn't my order shipped?", ("Pending payment", "complete payment")),
        Question("zh", "为什么订单还没发货?", ("Pending payment", "complete payment")),
        accent=_BLUE,
    ),
    _screen(
        "payment_card_zh", "payment", "支付结果",
        ("支付失败", "银行卡余额不足 E-2051", "请更换银行卡后重试", "订单金额: ¥89.00"),
        Question("zh", "付款为什么失败了?", ("余额不足", "E-2051", "更换银行卡")),
        Question("en", "Why did my payment fail?", ("余额不足", "E-2051", "更换银行卡")),
        alerts=(0, 1),
    ),
    _screen(
        "payment_declined_en", "payment", "Payment",
        ("Payment declined", "Error code: ERR_402", "Please use another card and try again",
         "Amount: $45.20"),
        Question("en", "What went wrong with my payment?", ("declined", "ERR_402", "another card")),
        Question("zh", "我的付款出了什么问题?", ("declined", "ERR_402", "another card")),
        alerts=(0, 1), accent=_BLUE,
    ),
    _screen(
        "invoice_zh", "invoice", "电子发票",
        ("发票号码: 04417588", "开具失败", "购买方税号有误", "请核对税号后重新提交", "价税合计: ¥1,130.00"),
        Question("zh", "发票为什么开不出来?", ("开具失败", "税号有误", "核对税号")),
        Question("en", "Why was the invoice not issued?", ("开具失败", "税号有误", "核对税号")),
        Question("zh", "发票号码是多少，出了什么问题?", ("04417588", "税号有误")),
        alerts=(1, 2),
    ),
    _screen(
        "invoice_overdue_en", "invoice", "Invoice",
        ("Invoice No: INV-2024-0042", "Status: Overdue", "Due date: 2024-04-30", "Total: $1,250.00"),
        Question("en", "What is wrong with this invoice?", ("Overdue",)),
        Question("zh", "这张发票有什么问题?", ("Overdue",)),
        accent=_BLUE,
    ),
    _screen(
        "login_zh", "login", "登录",
        ("登录失败", "密码错误，还可尝试2次", "忘记密码？点击重置"),
        Question("zh", "我为什么登录不了?", ("登录失败", "密码错误")),
        Question("en", "Why can't I log in?", ("登录失败", "密码错误")),
        alerts=(0, 1),
    ),
    _screen(
        "login_locked_en", "login", "Sign in",
        ("Sign-in failed", "Account locked after 5 attempts", "Please try again in 30 minutes"),
        Question("en", "Why can't I sign in?", ("Account locked", "30 minutes")),
        Question("zh", "我为什么登录不了?", ("Account locked", "30 minutes")),
        alerts=(0, 1), accent=_BLUE,
    ),
    _chart(
        "chart_zh", "2024年各季度销售额", ("一季度", "二季度", "三季度", "四季度"), (120, 150, 90, 60),
        Question("zh", "这张图表的标题是什么，有什么问题吗?", ("2024年各季度销售额",), absent=("失败",)),
        Question("en", "Is anything wrong in this chart?", ("2024年各季度销售额",), absent=("failed",)),
    ),
    _chart(
        "chart_en", "Monthly active users 2024", ("Jan", "Feb", "Mar", "Apr"), (30, 42, 55, 61),
        Question("en", "Why is this chart here, what is it about?", ("Monthly active users",)),
        Question("zh", "这张图有什么问题吗?", ("Monthly active users",)),
    ),
)


@cache
def _png(name: str) -> bytes:
    case = next(c for c in CASES if c.name == name)
    buffer = io.BytesIO()
    case.draw().save(buffer, format="PNG")
    return buffer.getvalue()
