"""Every OpenAI response the gateway answers with: plain, degraded, holding reply, streamed chunks.

Nothing else in the gateway builds a ``chat.completion`` or a ``chat.completion.chunk``,
and nothing an upstream engine adds reaches the caller: the request service and the stream
relay hand this module what :mod:`gateway.answer.upstream_answers` read from the upstream
(an :class:`Answer`, or :class:`Piece` by piece) and the request's
:class:`~gateway.schemas.FlashSightMeta`, and each response is built from the OpenAI
fields alone (``id``, ``object``, ``created``, ``model``, ``choices[index, message{role,
content, reasoning_content?, tool_calls?, refusal?}, finish_reason]``, ``usage``), FlashSight's
own model services' ``confidence`` / ``structured_output``, and ``flashsight``.

When vision answered alone, degraded (``meta.degraded`` and ``meta.notice``), the notice is
the first line of the answer, so a human reading only the text sees it too (a
language-gated answer is a full answer: its notice stays in the metadata). Streams are
framed as: role chunk, [notice delta when vision answers alone], content, thinking and
tool-call deltas, finish chunk, [usage chunk when ``stream_options.include_usage``],
``[DONE]``; the last chunk before ``[DONE]`` carries ``flashsight``. A stream that loses the
reasoner after its first token ends with the notice and ``finish_reason: "degraded"``. A
hit of the answer cache replays as either shape (tool calls included: each call streamed
as a head piece and its arguments), with a fresh id and ``created`` and the model that
originally answered.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from flashsight_common.schemas import new_completion_id
from flashsight_common.sse import DONE, encode_event

from gateway.answer.upstream_answers import Answer, Piece
from gateway.schemas import DEGRADED_NOTICE, FlashSightMeta
from gateway.store.answer_cache import CachedAnswer

MID_STREAM_FINISH_REASON = "degraded"
_NO_USAGE: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def with_notice(content: str | None) -> str:
    """The answer with the notice on its own first line, so a human reading it sees it too."""
    return f"{DEGRADED_NOTICE}\n{content or ''}"


def completion(answer: Answer, meta: FlashSightMeta) -> dict[str, Any]:
    """The gateway's ``chat.completion`` of an upstream answer: OpenAI fields, the notice when degraded."""
    content = with_notice(answer.content) if meta.degraded and meta.notice else answer.content
    message = _message(content, answer.reasoning_content, answer.tool_calls, answer.refusal)
    return {
        "id": answer.id or new_completion_id(),
        "object": "chat.completion",
        "created": answer.created or int(time.time()),
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason}],
        "usage": answer.usage or dict(_NO_USAGE),
        **answer.extensions,
        "flashsight": meta.model_dump(),
    }


def _message(
    content: str | None,
    reasoning_content: str | None,
    tool_calls: list[dict[str, Any]] | None,
    refusal: str | None = None,
) -> dict[str, Any]:
    # content is always present (null beside tool calls, as OpenAI sends it); the rest only when set.
    message: dict[str, Any] = {"role": "assistant", "content": content}
    optional = {"reasoning_content": reasoning_content, "tool_calls": tool_calls, "refusal": refusal}
    message.update({k: v for k, v in optional.items() if v})
    return message


def holding_completion(model: str, meta: FlashSightMeta, text: str) -> dict[str, Any]:
    """A ``chat.completion`` carrying the holding reply (no model was called)."""
    return {
        **_holding_head("chat.completion", model),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "flashsight": meta.model_dump(),
    }


async def holding_stream(
    model: str, meta: FlashSightMeta, text: str, *, on_done: Callable[[], None]
) -> AsyncIterator[bytes]:
    """The holding reply as an SSE stream: role, content, finish (with ``flashsight``), [DONE]."""
    head = _holding_head("chat.completion.chunk", model)
    try:
        for delta in ({"role": "assistant", "content": ""}, {"content": text}):
            yield encode_event({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        final = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield encode_event({**final, "flashsight": meta.model_dump()})
        yield DONE
    finally:
        on_done()


def _holding_head(kind: str, model: str) -> dict[str, Any]:
    return {"id": new_completion_id(), "object": kind, "created": int(time.time()), "model": model}


class ChunkWriter:
    """The SSE events of one streamed answer: one completion id, the model that really answers."""

    def __init__(self, model: str) -> None:
        self.id = new_completion_id()
        self.model = model
        self.created = int(time.time())

    def role(self) -> bytes:
        """The opening chunk: the assistant role, empty content."""
        return encode_event(self._chunk({"role": "assistant", "content": ""}))

    def notice_first(self) -> bytes:
        """The notice as the answer's first line (vision answers alone from the start)."""
        return encode_event(self._chunk({"content": f"{DEGRADED_NOTICE}\n"}))

    def notice_last(self) -> bytes:
        """The notice after a stream that lost the reasoner past its first token."""
        return encode_event(self._chunk({"content": f"\n\n{DEGRADED_NOTICE}"}))

    def content(self, text: str | None, thought: str | None) -> bytes:
        """One content (and/or ``reasoning_content``) delta."""
        return self.piece(Piece(content=text, reasoning_content=thought))

    def piece(self, piece: Piece) -> bytes:
        """One delta: content, ``reasoning_content``, ``tool_calls`` pieces, ``refusal`` (those set)."""
        delta = {
            "content": piece.content or None,
            "reasoning_content": piece.reasoning_content,
            "tool_calls": piece.tool_calls or None,
            "refusal": piece.refusal,
        }
        return encode_event(self._chunk({k: v for k, v in delta.items() if v is not None}))

    def closing(
        self,
        meta: FlashSightMeta,
        *,
        finish_reason: str,
        extra: dict[str, Any],
        usage: dict[str, Any] | None,
        include_usage: bool,
    ) -> list[bytes]:
        """The finish chunk, [the usage chunk], ``[DONE]``; the last chunk carries ``flashsight``."""
        flashsight = {"flashsight": meta.model_dump()}
        final = {**self._chunk({}, finish_reason=finish_reason), **extra}
        if include_usage:
            usage_chunk = {**self._head(), "choices": [], "usage": usage or dict(_NO_USAGE)}
            return [encode_event(final), encode_event({**usage_chunk, **flashsight}), DONE]
        return [encode_event({**final, **flashsight}), DONE]

    def failed(self, meta: FlashSightMeta, error: dict[str, Any]) -> list[bytes]:
        """The end of a stream that could not be finished: the error body, ``flashsight``, [DONE]."""
        return [encode_event({**error, "flashsight": meta.model_dump()}), DONE]

    def _head(self) -> dict[str, Any]:
        kind = "chat.completion.chunk"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def _chunk(self, delta: dict[str, Any], *, finish_reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        if finish_reason is not None:
            choice["finish_reason"] = finish_reason
        return {**self._head(), "choices": [choice]}


def cached_completion(meta: FlashSightMeta, answer: CachedAnswer) -> dict[str, Any]:
    """A ``chat.completion`` replaying a cached answer: fresh id and time, the model that wrote it."""
    return {
        **_holding_head("chat.completion", answer.model),
        "choices": [
            {
                "index": 0,
                "message": _message(answer.content, answer.reasoning_content, answer.tool_calls),
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": answer.usage or dict(_NO_USAGE),
        "flashsight": meta.model_dump(),
    }


async def cached_stream(
    meta: FlashSightMeta, answer: CachedAnswer, *, include_usage: bool
) -> AsyncIterator[bytes]:
    """A cached answer streamed like a live one: role, content, calls, finish, [usage], [DONE]."""
    writer = ChunkWriter(answer.model)
    yield writer.role()
    if answer.content or answer.reasoning_content:
        yield writer.content(answer.content, answer.reasoning_content)
    for index, call in enumerate(answer.tool_calls or ()):
        for piece in call_pieces(index, call):
            yield writer.piece(Piece(tool_calls=[piece]))
    for event in writer.closing(
        meta, finish_reason=answer.finish_reason, extra={}, usage=answer.usage, include_usage=include_usage
    ):
        yield event


def call_pieces(index: int, call: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole call as OpenAI streams it: ``index``, ``id``, ``type``, name, no arguments; then arguments."""
    function = call["function"]
    head = {
        "index": index,
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": ""},
    }
    return [head, {"index": index, "function": {"arguments": function["arguments"]}}]
