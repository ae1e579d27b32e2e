"""Relaying an upstream's stream as the gateway's own ``chat.completion.chunk`` SSE stream.

Before any byte goes to the caller the source is *primed*: read until its first token.
A reasoner failure up to that point therefore still switches to vision (and a vision
failure is still a clean 503). After it, a reasoner failure (dropped connection, error
event, stall past the idle timeout) ends the stream with the notice as a last content
delta and ``finish_reason: "degraded"`` (unless the request requires a tool call: notice
text is no call, so it ends with the error event instead); the stream always ends with the
metadata chunk and ``data: [DONE]``. Each upstream chunk is read for what the gateway
understands (:mod:`gateway.answer.upstream_answers`) and every chunk sent is built anew by
:mod:`gateway.answer.responses`: no upstream JSON is relayed as it came.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from gateway.answer.job import Job
from gateway.answer.responses import MID_STREAM_FINISH_REASON, ChunkWriter
from gateway.answer.tools import must_call
from gateway.answer.upstream_answers import ToolCallAssembler, read_chunk, readable_model
from gateway.errors import UpstreamError
from gateway.store.answer_cache import CachedAnswer
from gateway.upstreams.client import UpstreamStream

logger = logging.getLogger(__name__)


class PrimedStream:
    """An upstream stream read up to its first token; iterating replays that head, then the rest."""

    def __init__(
        self,
        stream: UpstreamStream,
        head: list[dict[str, Any]],
        rest: AsyncIterator[dict[str, Any]],
        *,
        started: float,
    ) -> None:
        self.stream = stream
        self.head = head
        self.rest = rest
        self.started = started
        self.model = next((readable_model(c["model"]) for c in head if c.get("model")), None)

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for chunk in self.head:
            yield chunk
        async for chunk in self.rest:
            yield chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


async def prime(stream: UpstreamStream, *, started: float) -> PrimedStream:
    """Read ``stream`` until its first content (or finish); errors propagate, the stream closed."""
    rest = aiter(stream)
    head: list[dict[str, Any]] = []
    try:
        while not stream.got_content:
            head.append(await anext(rest))
    except StopAsyncIteration:
        pass
    except BaseException:
        await stream.aclose()
        raise
    return PrimedStream(stream, head, rest, started=started)


async def relay(
    job: Job,
    source: PrimedStream,
    *,
    answered_by: Literal["vision", "reasoner"],
    on_failure: Callable[[], None] | None = None,
    on_answer: Callable[[CachedAnswer], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    """SSE bytes of ``source`` re-framed as the gateway's stream (the chunks: gateway.answer.responses).

    ``on_answer`` is awaited with the whole answer after ``[DONE]`` went out, unless the
    stream ended degraded or in an error (the answer cache stores it).
    """
    writer = ChunkWriter(source.model or "unknown")
    texts: list[str] = []
    thoughts: list[str] = []
    calls = ToolCallAssembler()
    finish: str | None = None
    usage: dict[str, Any] | None = None
    extra: dict[str, Any] = {}
    error: dict[str, Any] | None = None
    try:
        yield writer.role()
        # Only a degraded answer's notice goes in the text: a load-shed answer has none, and a
        # language-gated one (route_reason reasoner_language) is a full answer, noted in the metadata.
        if job.meta.degraded and job.meta.notice:
            yield writer.notice_first()
        async for chunk in source:
            piece = read_chunk(chunk)
            usage = piece.usage or usage
            if piece.says_something:
                texts.append(piece.content or "")
                thoughts.append(piece.reasoning_content or "")
                calls.add(piece.tool_calls)
                yield writer.piece(piece)
            if piece.finish_reason:
                finish, extra = piece.finish_reason, piece.extensions
    except UpstreamError as exc:
        logger.warning("%s failed mid-stream (request %s): %s", answered_by, job.request_id, exc.message)
        if on_failure is not None:
            on_failure()
        if answered_by == "reasoner" and not must_call(job.request):
            job.meta.mark_degraded("reasoner_failed_mid_stream")
            yield writer.notice_last()
            finish = MID_STREAM_FINISH_REASON
        else:  # the last resort failed, or a call was required: say what failed, pretend nothing
            error = exc.body()
    finally:
        await source.aclose()
    job.meta.record_stage(answered_by, started=source.started)
    meta = job.meta.finish(started=job.started)
    if error is not None:
        ending = writer.failed(meta, error)
    else:
        ending = writer.closing(
            meta,
            finish_reason=finish or "stop",
            extra=extra,
            usage=usage,
            include_usage=job.request.include_usage(),
        )
    for event in ending:
        yield event
    if on_answer is not None and error is None and not meta.degraded:
        await on_answer(
            CachedAnswer(
                content="".join(texts) if any(texts) or not calls.calls() else None,
                finish_reason=finish or "stop",
                model=writer.model,
                reasoning_content="".join(thoughts) or None,
                usage=usage,
                tool_calls=calls.calls(),
                models=meta.models.model_dump(),
            )
        )
