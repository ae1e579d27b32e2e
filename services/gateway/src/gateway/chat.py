"""Serving one ``POST /v1/chat/completions``: text cap, load shedding, deadline, answer.

The route parses the body and hands over here, so the route stays a thin adapter and
the order of the cheap refusals (too much text, holding reply under overload) before
any image is decoded or any model called is decided in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Response
from fastapi.responses import StreamingResponse
from flashsight_common.schemas import ImagePart
from flashsight_common.sse import SSE_HEADERS, SSE_MEDIA_TYPE

from gateway.errors import InvalidRequestError, RequestDeadlineError
from gateway.fastjson import FastJSONResponse
from gateway.pipeline import Pipeline
from gateway.routing import forced_route, pick_route
from gateway.schemas import FlashSightMeta, GatewayChatRequest
from gateway.shedding import LoadShedder, holding_answer, holding_stream, mark_shed


def check_text_size(request: GatewayChatRequest, *, max_chars: int) -> None:
    """400 when the conversation's text exceeds ``max_chars`` (the models could not read it anyway)."""
    total = sum(len(m.text()) for m in request.messages)
    if total > max_chars:
        raise InvalidRequestError(
            f"the messages hold {total:,} characters of text; at most {max_chars:,} are accepted "
            "(shorten the conversation or the prompt)",
            param="messages",
            code="text_too_long",
        )


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
    steps = shedder.enter()
    handed_to_stream = False
    try:
        check_text_size(body, max_chars=max_text_chars)
        if "overload_holding_reply" in steps:
            meta = _holding_meta(body, pipeline, request_id=request_id, header_route=header_route)
            mark_shed(meta, steps)
            text = shedder.policy.holding_reply
            if body.stream:
                handed_to_stream = True
                events = holding_stream(body, meta, text, on_done=shedder.leave)
                return StreamingResponse(
                    events, media_type=SSE_MEDIA_TYPE, headers={**SSE_HEADERS, **meta.headers()}
                )
            return FastJSONResponse(holding_answer(body, meta, text), headers=meta.headers())
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
            # Timings and a mid-stream degradation are only known at the end: see the last chunk.
            return StreamingResponse(
                shedder.guard_stream(source),
                media_type=SSE_MEDIA_TYPE,
                headers={**SSE_HEADERS, **job.meta.headers()},
            )
        return FastJSONResponse(answer, headers=job.meta.headers())
    finally:
        if not handed_to_stream:
            shedder.leave()


def _holding_meta(
    body: GatewayChatRequest, pipeline: Pipeline, *, request_id: str, header_route: str | None
) -> FlashSightMeta:
    # The route is still decided (and a bad model/route still refused) without touching images.
    forced = forced_route(body.model, {**body.route_forces(), "X-FlashSight-Route header": header_route})
    has_images = any(
        isinstance(part, ImagePart)
        for m in body.messages
        if isinstance(m.content, list)
        for part in m.content
    )
    text = next((m.text() for m in reversed(body.messages) if m.role == "user"), "")
    decision = pick_route(text, forced=forced, has_images=has_images, table=pipeline.keywords)
    return FlashSightMeta(
        route=decision.route,
        route_reason=decision.reason,
        matched_keyword=decision.keyword,
        request_id=request_id,
    )
