"""Stopping a reasoner that loops: the answer ends where it starts saying again what it said.

Greedy SmolLM2-135M often falls into a loop ("The conversation is about a 900×420 landscape
image, …" again and again) until ``max_tokens``. The model servers have no repetition
penalty, and the gateway may talk to any OpenAI-compatible reasoner, so the gateway stops
on a repeated n-gram instead: once the answer repeats a run of :data:`LOOP_SPAN` tokens
(words, numbers, Chinese characters), everything from the repeat on is dropped and the
answer finishes with ``stop``. Twelve tokens is longer than any quote a good answer repeats
(银行卡验证失败 ERR_1003 is 8) and shorter than the sentences small models loop on; see
``bench/grounded_answers.py`` (the ``loops`` column) and docs/models.md.

The request service does not apply it to an answer that may hold tool calls
(gateway.answer.tools): there the repeat is a call ``max_tokens`` cut off, which must stay
whole with ``length``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

LOOP_SPAN = 12
_TOKEN = re.compile(r"[\u3400-\u9fff]|[A-Za-z0-9_']+")


def loop_start(text: str, span: int = LOOP_SPAN) -> int | None:
    """Where ``text`` starts repeating a ``span``-token run it already said (None: it does not)."""
    tokens = [(m.start(), m.group(0).lower()) for m in _TOKEN.finditer(text)]
    seen: set[tuple[str, ...]] = set()
    for i in range(len(tokens) - span + 1):
        gram = tuple(token for _, token in tokens[i:i + span])
        if gram in seen:
            return tokens[i][0]
        seen.add(gram)
    return None


def cut_loop(completion: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` with its first choice's content ending before any loop."""
    choices = completion.get("choices") or []
    content = (choices[0].get("message") or {}).get("content") if choices else None
    cut = loop_start(content) if isinstance(content, str) else None
    if cut is None:
        return completion
    message = {**choices[0]["message"], "content": content[:cut].rstrip()}  # type: ignore[index]
    first = {**choices[0], "message": message, "finish_reason": "stop"}
    return {**completion, "choices": [first, *choices[1:]]}


def _content(chunk: dict[str, Any]) -> str | None:
    choices = chunk.get("choices") or []
    piece = ((choices[0].get("delta") or {}) if choices else {}).get("content")
    return piece if isinstance(piece, str) else None


def said_in(chunks: list[dict[str, Any]]) -> str:
    """The content the ``chat.completion.chunk`` dicts carry, joined."""
    return "".join(_content(chunk) or "" for chunk in chunks)


Chunks = AsyncIterator[dict[str, Any]]


async def stop_loops(chunks: Chunks, *, said: str = "") -> Chunks:
    """``chunks`` (``chat.completion.chunk`` dicts) until the content loops; then a ``stop`` finish.

    ``said`` is the content already relayed before these chunks (a primed stream's head).
    """
    text = said
    async for chunk in chunks:
        piece = _content(chunk)
        if not piece:
            yield chunk
            continue
        cut = loop_start(text + piece)
        if cut is None:
            text += piece
            yield chunk
            continue
        kept = (text + piece)[:cut][len(text):]
        if kept.strip():
            choice = chunk["choices"][0]
            delta = {**choice["delta"], "content": kept.rstrip()}
            yield {**chunk, "choices": [{**choice, "delta": delta}]}
        yield {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        return
