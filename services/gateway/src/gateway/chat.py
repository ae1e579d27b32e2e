"""Serving one chat request: in-flight count, text cap, load shedding, deadline, answer.

The routes parse the body and hand over here (``/v1/chat/completions`` through
:func:`serve_chat`, the seed endpoints through :func:`answer_chat`), so they stay thin
adapters and the order of the cheap refusals (too much text, holding reply under
overload) before any image is decoded or any model called is decided in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Response
from fastapi.responses import StreamingResponse
from flashsight_common.sse import SSE_HEADERS, SSE_MEDIA_TYPE

from gateway.errors import RequestDeadlineError
from gateway.fastjson import FastJSONResponse
from gateway.pipeline import Pipeline
from gateway.promptbudget import check_prompt_cost
from gateway.schemas import FlashSightMeta, GatewayChatRequest
from gateway.shedding import LoadShedder, holding_answer, holding_stream, mark_shed


def check_text_size(request: GatewayChatRequest, *, max_chars: int) -> None:
    """400 when the conversation's prompt (text + template markers) exceeds ``max_chars``."""
    check_prompt_cost([m.text() for m in request.messages], max_chars=max_chars)


@asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """``asyncio.timeout(seconds)`` whose expiry is the 504 ``request_deadline_exceeded``."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise RequestDeadlineError(
            f"the request did not complete within the gateway's {seconds:g}s deadline "
            "(GATEWAY_REQUEST_DEADLINE_S); retry, or ask for fewer tokens"
        ) from exc


@dataclass(frozen=True, slots=True)
class Answered:
    """What :func:`answer_chat` produced: a completion, or SSE events that own an in-flight slot."""

    meta: FlashSightMeta
    completion: dict[str, Any] | None = None
    events: AsyncIterator[bytes] | None = None
    """Set for a streamed answer; the request leaves the in-flight count when it ends."""


async def answer_chat(
    body: GatewayChatRequest,
    *,
    pipeline: Pipeline,
    shedder: LoadShedder,
    deadline_s: float,
    max_text_chars: int,
    request_id: str,
    header_route: str | None,
) -> Answered:
    """The one path every chat-shaped endpoint takes: counted in flight, text cap, shed, deadline.

    Raises the request's HTTP error. The seed endpoints (gateway.seeds) use it too, so they
    are counted, shed and held exactly like ``/v1/chat/completions``.
    """
    steps = shedder.enter()
    handed_to_stream = False
    try:
        check_text_size(body, max_chars=max_text_chars)
        if "overload_holding_reply" in steps:
            meta = pipeline.route_only(body, request_id=request_id, header_route=header_route)
            mark_shed(meta, steps)
            text = shedder.policy.holding_reply
            if body.stream:
                handed_to_stream = True
                return Answered(meta, events=holding_stream(body, meta, text, on_done=shedder.leave))
            return Answered(meta, completion=holding_answer(body, meta, text))
        body = shedder.apply(body, steps)
        async with deadline(deadline_s):
            job = await pipeline.prepare(body, request_id=request_id, header_route=header_route)
            mark_shed(job.meta, steps)
            if body.stream:
                source = await pipeline.stream(job)  # primed: vision down is still a 503 here
            else:
                answer = await pipeline.complete(job)
        if body.stream:
            handed_to_stream = True
            return Answered(job.meta, events=shedder.guard_stream(source))
        return Answered(job.meta, completion=answer)
    finally:
        if not handed_to_stream:
            shedder.leave()


async def serve_chat(
    body: GatewayChatRequest,
    *,
    pipeline: Pipeline,
    shedder: LoadShedder,
    deadline_s: float,
    max_text_chars: int,
    request_id: str,
    header_route: str | None,
) -> Response:
    """The answer (JSON or SSE) for a parsed chat request; raises the request's HTTP error."""
    answered = await answer_chat(
        body,
        pipeline=pipeline,
        shedder=shedder,
        deadline_s=deadline_s,
        max_text_chars=max_text_chars,
        request_id=request_id,
        header_route=header_route,
    )
    headers = answered.meta.headers()
    if answered.events is not None:
        # Timings and a mid-stream degradation are only known at the end: see the last chunk.
        return StreamingResponse(
            answered.events, media_type=SSE_MEDIA_TYPE, headers={**SSE_HEADERS, **headers}
        )
    return FastJSONResponse(answered.completion, headers=headers)
