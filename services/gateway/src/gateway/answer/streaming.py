"""Relaying an upstream's stream as the gateway's own ``chat.completion.chunk`` SSE stream.

Before any byte goes to the caller the source is *primed*: read until its first token.
A reasoner failure up to that point therefore still switches to vision (and a vision
failure is still a clean 503). After it, a reasoner failure (dropped connection, error
event, stall past the idle timeout) ends the stream with the notice as a last content
delta and ``finish_reason: "degraded"``; the stream always ends with the metadata chunk
and ``data: [DONE]``. Every chunk is built by :mod:`gateway.answer.responses`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from flashsight_common.schemas import Usage

from gateway.answer.job import Job
from gateway.answer.responses import MID_STREAM_FINISH_REASON, ChunkWriter
from gateway.errors import UpstreamError
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
        self.model = next((str(c["model"]) for c in head if c.get("model")), None)

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
) -> AsyncIterator[bytes]:
    """SSE bytes of ``source`` re-framed as the gateway's stream (the chunks: gateway.answer.responses)."""
    writer = ChunkWriter(source.model or "unknown")
    finish: str | None = None
    usage: Usage | None = None
    extra: dict[str, Any] = {}
    error: dict[str, Any] | None = None
    try:
        yield writer.role()
        if job.meta.notice:  # vision answers alone; a load-shed answer is degraded but needs no notice
            yield writer.notice_first()
        async for chunk in source:
            if chunk.get("usage"):
                usage = Usage.model_validate(chunk["usage"])
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                text, thought = delta.get("content"), delta.get("reasoning_content")
                if text or thought:
                    yield writer.content(text, thought)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                    extra = {k: chunk[k] for k in ("confidence",) if k in chunk}
    except UpstreamError as exc:
        logger.warning("%s failed mid-stream (request %s): %s", answered_by, job.request_id, exc.message)
        if on_failure is not None:
            on_failure()
        if answered_by == "reasoner":
            job.meta.mark_degraded("reasoner_failed_mid_stream")
            yield writer.notice_last()
            finish = MID_STREAM_FINISH_REASON
        else:  # vision was the last resort: say what failed rather than pretend the answer is whole
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
