"""What a question asks of ocr-lite: a field, a caption, something it cannot see, or anything else.

The rules are tried in order (a dispatch table, first match wins); each returns the
keyword that matched, so an answer can be traced to its cause. An instruction opening with
a caption verb ("Describe this image ...", "请描述...") is a caption whatever it goes on to
mention; a "why / what is wrong / what should I do" question is a diagnosis whatever field
it names; otherwise field questions come first because field names can contain words other
rules react to ("收货人" holds "人").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from vision.backends.fields import field_asked
from vision.backends.text import mentions

CAPTION_WORDS: tuple[str, ...] = (
    "描述", "描绘", "介绍", "概括", "总结", "概述", "说明一下", "图里有什么", "图中有什么", "图片内容",
    "写了什么", "内容是什么", "识别", "提取文字", "文字内容", "看看这张",
    "describe", "description", "caption", "summarise", "summarize", "summary", "what's in",
    "what is in", "what does it say", "read the text", "transcribe", "extract the text", "ocr",
)

UNSEEABLE_WORDS: tuple[str, ...] = (
    "物体", "物品", "动物", "猫", "狗", "鸟", "鱼", "人物", "有人", "几个人", "什么人", "男人", "女人",
    "孩子", "人脸", "笑", "表情", "场景", "风景", "天气", "颜色", "穿着", "穿的", "长什么样", "汽车",
    "花", "树", "品种",
    "object", "objects", "animal", "animals", "cat", "cats", "dog", "dogs", "bird", "birds", "person",
    "people", "man", "woman", "child", "kid", "face", "smiling", "smile", "wearing", "scene",
    "landscape", "weather", "colour", "color", "colours", "colors", "car", "breed", "tree", "flower",
)


# "What is wrong / why / what should I do": answered from the screen's error and status rows.
DIAGNOSE_WORDS: tuple[str, ...] = (
    "为什么", "为何", "怎么回事", "怎么了", "什么问题", "哪里出错", "出了什么", "出错", "原因", "怎么办",
    "怎么处理", "如何处理", "如何解决", "怎么解决", "该怎么", "应该怎么", "要怎么", "需要做什么", "我该",
    "还没有", "还没", "没有发货", "报错", "失败", "错误", "异常", "不能", "无法", "问题",
    "why", "what's wrong", "what is wrong", "wrong", "what happened", "what went wrong", "problem",
    "issue", "error", "failed", "fail", "declined", "what should i do", "what do i do", "what can i do",
    "how do i fix", "how to fix", "how can i fix", "fix", "not shipped", "hasn't shipped", "stuck",
    "can't", "cannot", "unable", "next step", "next steps",
)

_POLITE_OPENING = re.compile(r"^(?:请你|请|麻烦|帮我|please|can you|could you)[\s,，]*")


@dataclass(frozen=True, slots=True)
class Intent:
    """The kind of answer a question needs, the keyword that decided it, and the field asked for."""

    kind: str
    keyword: str | None = None
    field: str | None = None


def _keyword_rule(kind: str, words: tuple[str, ...]) -> Callable[[str], Intent | None]:
    """A rule answering ``kind`` when the question names any of ``words``."""

    def rule(question: str) -> Intent | None:
        word = next((w for w in words if mentions(question, w)), None)
        return Intent(kind, keyword=word) if word else None

    return rule


def _leading_caption_rule(question: str) -> Intent | None:
    """An instruction that starts with a caption verb ("Describe this image ... the total") is a caption."""
    opening = _POLITE_OPENING.sub("", question.strip().lower())
    word = next((w for w in CAPTION_WORDS if opening.startswith(w)), None)
    return Intent("caption", keyword=word) if word else None


def _field_rule(question: str) -> Intent | None:
    field = field_asked(question)
    return Intent("field", field=field) if field else None


def _diagnose_rule(question: str) -> Intent | None:
    word = next((w for w in DIAGNOSE_WORDS if mentions(question, w)), None)
    return Intent("diagnose", keyword=word, field=field_asked(question)) if word else None


# The intent rules, in order. "Why is the amount wrong?" asks for a diagnosis, not the amount.
INTENT_RULES: tuple[Callable[[str], Intent | None], ...] = (
    _leading_caption_rule,
    _diagnose_rule,
    _field_rule,
    _keyword_rule("unseeable", UNSEEABLE_WORDS),
    _keyword_rule("caption", CAPTION_WORDS),
)


def classify_intent(question: str) -> Intent:
    """The first rule that matches ``question``; a question with no text asks for a caption."""
    if not question.strip():
        return Intent("caption")
    for rule in INTENT_RULES:
        intent = rule(question)
        if intent is not None:
            return intent
    return Intent("generic")
