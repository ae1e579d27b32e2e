"""Every OpenAI response the gateway answers with: plain, degraded, holding reply, streamed chunks.

Nothing else in the gateway builds a ``chat.completion`` or a ``chat.completion.chunk``;
the request service and the stream relay hand this module the upstream's answer (or its
text deltas) and the request's :class:`~gateway.schemas.FlashSightMeta`.

Plain answers are the upstream's ``chat.completion`` with ``flashsight`` added; when vision
answered alone (``meta.notice`` set) the notice is the first line of the answer, so a human
reading only the text sees it too. Streams are framed as: role chunk, [notice delta when
vision answers alone], content deltas, finish chunk, [usage chunk when
``stream_options.include_usage``], ``[DONE]``; the last chunk before ``[DONE]`` carries
``flashsight``. A stream that loses the reasoner after its first token ends with the notice
and ``finish_reason: "degraded"``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from flashsight_common.schemas import ChatCompletionChunk, ChunkChoice, Delta, Usage, new_completion_id
from flashsight_common.sse import DONE, encode_event

from gateway.schemas import DEGRADED_NOTICE, FlashSightMeta

MID_STREAM_FINISH_REASON = "degraded"


def with_notice(content: str | None) -> str:
    """The answer with the notice on its own first line, so a human reading it sees it too."""
    return f"{DEGRADED_NOTICE}\n{content or ''}"


def completion(answer: dict[str, Any], meta: FlashSightMeta) -> dict[str, Any]:
    """The upstream's ``chat.completion`` as the gateway's: the notice when degraded, ``flashsight``."""
    if meta.notice:
        choice = answer["choices"][0]
        message = {**choice.get("message", {})}
        message["content"] = with_notice(message.get("content"))
        answer = {**answer, "choices": [{**choice, "message": message}, *answer["choices"][1:]]}
    return {**answer, "flashsight": meta.model_dump()}


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
        return encode_event(self._chunk(delta=Delta(role="assistant", content="")))

    def notice_first(self) -> bytes:
        """The notice as the answer's first line (vision answers alone from the start)."""
        return encode_event(self._chunk(delta=Delta(content=f"{DEGRADED_NOTICE}\n")))

    def notice_last(self) -> bytes:
        """The notice after a stream that lost the reasoner past its first token."""
        return encode_event(self._chunk(delta=Delta(content=f"\n\n{DEGRADED_NOTICE}")))

    def content(self, text: str | None, thought: str | None) -> bytes:
        """One content (and/or ``reasoning_content``) delta."""
        return encode_event(self._chunk(delta=Delta(content=text or None, reasoning_content=thought)))

    def closing(
        self,
        meta: FlashSightMeta,
        *,
        finish_reason: str,
        extra: dict[str, Any],
        usage: Usage | None,
        include_usage: bool,
    ) -> list[bytes]:
        """The finish chunk, [the usage chunk], ``[DONE]``; the last chunk carries ``flashsight``."""
        # The metadata keeps its nulls (matched_keyword: null says "no keyword"), so it is added
        # after the chunk's own None-free dump.
        flashsight = {"flashsight": meta.model_dump()}
        final = self._chunk(finish_reason=finish_reason, **extra)
        if include_usage:
            usage_chunk = ChatCompletionChunk(
                id=self.id, model=self.model, created=self.created, choices=[], usage=usage or Usage()
            )
            return [
                encode_event(final),
                encode_event({**usage_chunk.model_dump(exclude_none=True), **flashsight}),
                DONE,
            ]
        return [encode_event({**final.model_dump(exclude_none=True), **flashsight}), DONE]

    def failed(self, meta: FlashSightMeta, error: dict[str, Any]) -> list[bytes]:
        """The end of a stream whose last resort (vision) failed: its error body, ``flashsight``, [DONE]."""
        return [encode_event({**error, "flashsight": meta.model_dump()}), DONE]

    def _chunk(
        self, *, delta: Delta | None = None, finish_reason: str | None = None, **extra: Any
    ) -> ChatCompletionChunk:
        choice = ChunkChoice(delta=delta or Delta(), finish_reason=finish_reason)
        return ChatCompletionChunk(
            id=self.id, model=self.model, created=self.created, choices=[choice], **extra
        )
