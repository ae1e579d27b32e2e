"""Small text helpers shared by intent matching and field reading."""

from __future__ import annotations

import re

_COMPACT_DROP = re.compile(r"[\s.#_\-/()（）【】\[\]·•]+")
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


def compact(text: str) -> str:
    """``text`` lower-cased without spaces and the punctuation OCR reads inconsistently.

    RapidOCR drops spaces ("Invoice No." reads "InvoiceNo."), so keys are compared compact.
    """
    return _COMPACT_DROP.sub("", text.lower())


def mentions(text: str, word: str) -> bool:
    """Whether ``text`` names ``word``: English words on word boundaries, Chinese anywhere.

    Word boundaries keep "cat" from matching "location"; Chinese has no spaces to bound on.
    """
    if word.isascii():
        return re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", text.lower()) is not None
    return compact(word) in compact(text)


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def answer_language(question: str, *, fallback_text: str = "") -> str:
    """``"zh"`` for a Chinese question, else ``"en"``; a question without words follows ``fallback_text``."""
    if has_cjk(question):
        return "zh"
    if _LATIN.search(question):
        return "en"
    return "zh" if has_cjk(fallback_text) else "en"
