"""An honest, simple token count for ocr-lite, which has no tokenizer.

One token is one CJK character, one run of ASCII letters or digits, or one other
non-space character. That is close to how BPE tokenizers split Chinese and short English
words, and it is what ``usage`` and ``max_tokens`` are measured in for this backend.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TOKEN = re.compile(r"[\u3400-\u9fff]|[A-Za-z0-9]+|\S")


def count_tokens(text: str) -> int:
    """The number of tokens in ``text``."""
    return sum(1 for _ in TOKEN.finditer(text))


def cut_to_tokens(text: str, limit: int) -> str:
    """The longest prefix of ``text`` holding at most ``limit`` tokens (whitespace after the last kept)."""
    if limit <= 0:
        return ""
    for count, match in enumerate(TOKEN.finditer(text), start=1):
        if count == limit:
            return text[: match.end()]
    return text


def limit_pieces(pieces: Sequence[str], limit: int) -> tuple[list[str], bool]:
    """The pieces that fit in ``limit`` tokens (the last one cut) and whether anything was cut."""
    kept: list[str] = []
    left = limit
    for piece in pieces:
        size = count_tokens(piece)
        if size <= left:
            kept.append(piece)
            left -= size
            continue
        head = cut_to_tokens(piece, left)
        if head:
            kept.append(head)
        return kept, True
    return kept, False
