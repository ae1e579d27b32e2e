"""Relaying an upstream's stream as the gateway's own ``chat.completion.chunk`` SSE stream.

Before any byte goes to the caller the source is *primed*: read until its first token.
A reasoner failure up to that point therefore still switches to vision (and a vision
failure is still a clean 503). After it, a reasoner failure (dropped connection, error
event, stall past the idle timeout) ends the stream with the notice as a last content
delta and ``finish_reason: "degraded"``; the stream always ends with the metadata chunk
and ``data: [DONE]``.

Framing: role chunk, [notice delta when degraded], content deltas, finish chunk,
[usage chunk when ``stream_options.include_usage``], ``[DONE]``; the last chunk before
``[DONE]`` carries the ``flashsight`` object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from flashsight_common.schemas import ChatCompletionChunk, ChunkChoice, Delta, Usage, new_completion_id
from flashsight_common.sse import DONE, encode_event

from gateway.degrade import mark_degraded
from gateway.errors import UpstreamError
from gateway.job import Job, elapsed_ms
from gateway.schemas import DEGRADED_NOTICE
from gateway.upstream import UpstreamStream

logger = logging.getLogger(__name__)

MID_STREAM_FINISH_REASON = "degraded"


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


class _ChunkWriter:
    """Builds the gateway's chunks: one completion id, the model that really answers."""

    def __init__(self, model: str) -> None:
        self.id = new_completion_id()
        self.model = model
        self.created = int(time.time())

    def chunk(
        self, *, delta: Delta | None = None, finish_reason: str | None = None, **extra: Any
    ) -> ChatCompletionChunk:
        choice = ChunkChoice(delta=delta or Delta(), finish_reason=finish_reason)
        return ChatCompletionChunk(
            id=self.id, model=self.model, created=self.created, choices=[choice], **extra
        )

    def usage(self, usage: Usage) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id, model=self.model, created=self.created, choices=[], usage=usage
        )


async def relay(
    job: Job,
    source: PrimedStream,
    *,
    answered_by: str,
    on_failure: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """SSE bytes of ``source`` re-framed as the gateway's stream (``answered_by``: vision | reasoner)."""
    writer = _ChunkWriter(source.model or "unknown")
    finish: str | None = None
    usage: Usage | None = None
    extra: dict[str, Any] = {}
    error: dict[str, Any] | None = None
    try:
        yield encode_event(writer.chunk(delta=Delta(role="assistant", content="")))
        if job.meta.notice:  # vision answers alone; a load-shed answer is degraded but needs no notice
            yield encode_event(writer.chunk(delta=Delta(content=f"{DEGRADED_NOTICE}\n")))
        async for chunk in source:
            if chunk.get("usage"):
                usage = Usage.model_validate(chunk["usage"])
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                text, thought = delta.get("content"), delta.get("reasoning_content")
                if text or thought:
                    yield encode_event(
                        writer.chunk(delta=Delta(content=text or None, reasoning_content=thought))
                    )
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                    extra = {k: chunk[k] for k in ("confidence", "structured_output") if k in chunk}
    except UpstreamError as exc:
        logger.warning("%s failed mid-stream (request %s): %s", answered_by, job.request_id, exc.message)
        if on_failure is not None:
            on_failure()
        if answered_by == "reasoner":
            mark_degraded(job.meta, "reasoner_failed_mid_stream")
            yield encode_event(writer.chunk(delta=Delta(content=f"\n\n{DEGRADED_NOTICE}")))
            finish = MID_STREAM_FINISH_REASON
        else:  # vision was the last resort: say what failed rather than pretend the answer is whole
            error = exc.body()
    finally:
        await source.aclose()
    setattr(job.meta.timings_ms, answered_by, elapsed_ms(source.started))
    # The metadata keeps its nulls (matched_keyword: null says "no keyword"), so it is added
    # after the chunk's own None-free dump.
    meta = {"flashsight": job.finish_meta().model_dump()}
    final = writer.chunk(finish_reason=finish or "stop", **extra)
    if error is not None:
        yield encode_event({**error, **meta})
    elif job.request.include_usage():
        yield encode_event(final)
        yield encode_event({**writer.usage(usage or Usage()).model_dump(exclude_none=True), **meta})
    else:
        yield encode_event({**final.model_dump(exclude_none=True), **meta})
    yield DONE
