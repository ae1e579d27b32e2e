"""A request's engine events as OpenAI ``chat.completion.chunk`` server-sent events.

Framing: a first chunk with ``role: assistant``, one chunk per text delta (``content`` or
``reasoning_content``; with tools, content and ``tool_calls`` deltas as
:class:`~modelserver.tools.ToolDeltaWriter` releases them: a call's head as soon as its name
is decoded, then its arguments fragment by fragment), a final chunk with
``finish_reason`` (and ``confidence`` when the backend gave one, ``structured_output`` for a
``response_format`` answer), a usage chunk when ``stream_options.include_usage``, then ``[DONE]``.
An engine failure mid-stream becomes an OpenAI error event followed by ``[DONE]``, so a
client never waits on a stream that will not end.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from flashsight_common.schemas import ChatCompletionChunk, ChunkChoice, Delta, Usage
from flashsight_common.sse import DONE, encode_event

from modelserver.engine import Finished, RequestHandle, TextDelta
from modelserver.errors import ModelServerError
from modelserver.tools import ToolDeltaWriter

logger = logging.getLogger(__name__)


async def stream_chat_chunks(
    handle: RequestHandle, *, completion_id: str, model: str, include_usage: bool,
    on_finished: Callable[[Finished], None] | None = None, tools: ToolDeltaWriter | None = None,
) -> AsyncIterator[bytes]:
    """SSE bytes for one streamed answer; cancels the request's row if the client goes away."""

    def chunk(*, delta: Delta | None = None, finish_reason: str | None = None) -> ChatCompletionChunk:
        choice = ChunkChoice(delta=delta or Delta(), finish_reason=finish_reason)
        return ChatCompletionChunk(id=completion_id, model=model, choices=[choice])

    try:
        yield encode_event(chunk(delta=Delta(role="assistant", content="")))
        async for event in handle:
            if isinstance(event, TextDelta):
                if tools is not None and not event.reasoning:
                    for delta in tools.feed(event.text):
                        yield encode_event(chunk(delta=delta))
                    continue
                delta = Delta(reasoning_content=event.text) if event.reasoning else Delta(content=event.text)
                yield encode_event(chunk(delta=delta))
                continue
            finish_reason = event.finish_reason
            if tools is not None:
                for delta in tools.finish():
                    yield encode_event(chunk(delta=delta))
                finish_reason = tools.finish_reason(finish_reason)
            final = chunk(finish_reason=finish_reason)
            if event.confidence is not None:
                final = final.model_copy(update={"confidence": event.confidence})
            if event.structured is not None:
                final = final.model_copy(update={"structured_output": event.structured})
            yield encode_event(final)
            if include_usage:
                usage = Usage.of(event.prompt_tokens, event.completion_tokens)
                last = ChatCompletionChunk(id=completion_id, model=model, choices=[], usage=usage)
                yield encode_event(last)
            if on_finished is not None:
                on_finished(event)
    except ModelServerError as exc:
        logger.warning("stream %s failed: %s", completion_id, exc.message)
        yield encode_event(exc.body())
    finally:
        handle.cancel()  # no-op when finished; stops decoding when the client disconnected
    yield DONE
