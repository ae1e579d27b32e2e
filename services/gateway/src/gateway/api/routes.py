"""The OpenAI-compatible routes, health and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from flashsight_common.schemas import ModelCard, ModelList
from flashsight_common.sse import SSE_HEADERS, SSE_MEDIA_TYPE
from pydantic import ValidationError

from gateway.answer.route_choice import MODEL_ROUTES
from gateway.api.deps import AnswerServiceDep, MetricsDep, ReasonerDep, RedisGuardDep, RequestIdDep, VisionDep
from gateway.fastjson import FastJSONResponse
from gateway.schemas import GatewayChatRequest
from gateway.telemetry.metrics import CONTENT_TYPE_LATEST

router = APIRouter()


def parse_chat_request(raw: bytes) -> GatewayChatRequest:
    """Parse the body here, so bad JSON and bad fields both get the OpenAI-shaped 400 naming the field."""
    try:
        return GatewayChatRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


@router.post("/v1/chat/completions")
async def chat_completions(
    request: Request,
    service: AnswerServiceDep,
    request_id: RequestIdDep,
    x_flashsight_route: str | None = Header(default=None),
    cache_control: str | None = Header(default=None),
) -> Response:
    body = parse_chat_request(await request.body())
    answered = await service.answer(
        body,
        request_id=request_id,
        header_route=x_flashsight_route,
        cache_scope=getattr(request.state, "caller", None),  # set by the auth middleware
        cache_control=cache_control,
    )
    headers = answered.meta.headers()
    if answered.events is not None:
        # Timings and a mid-stream degradation are only known at the end: see the last chunk.
        return StreamingResponse(
            answered.events, media_type=SSE_MEDIA_TYPE, headers={**SSE_HEADERS, **headers}
        )
    return FastJSONResponse(answered.completion, headers=headers)


@router.get("/v1/models")
async def list_models() -> ModelList:
    return ModelList(data=[ModelCard(id=model_id) for model_id in MODEL_ROUTES])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (says nothing about the upstreams: that is /readyz)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(vision: VisionDep, reasoner: ReasonerDep, redis: RedisGuardDep) -> JSONResponse:
    """503 unless vision is ready; the reasoner or Redis down is reported but still 200.

    Each upstream entry also carries ``circuit`` (closed / open / half_open): this
    gateway's breaker for it. An open vision circuit means answers are 503 right now.

    Why: without vision nothing can be answered, so the gateway leaves rotation. Without
    the reasoner every request is still answered (cascade degrades to vision alone, marked),
    and without Redis answers flow uncached; taking every gateway replica out of a load
    balancer for either would turn a degradation into an outage. ``status`` says
    ``degraded`` then, with the reason in the entry's ``detail``.
    """
    vision_ready, reasoner_ready, redis_ok = await asyncio.gather(
        vision.readiness(), reasoner.readiness(), redis.ping()
    )
    serving = vision_ready["ready"] and vision_ready["circuit"] != "open"
    whole = reasoner_ready["ready"] and reasoner_ready["circuit"] != "open" and redis_ok
    status = ("ready" if whole else "degraded") if serving else "not_ready"
    if not reasoner_ready["ready"]:
        reasoner_ready = {
            **reasoner_ready,
            "impact": "cascade answers come from vision alone, marked degraded",
        }
    body = {
        "status": status,
        "vision": vision_ready,
        "reasoner": reasoner_ready,
        "redis": {"ok": redis_ok, "detail": None if redis_ok else "unreachable: answers are served uncached"},
    }
    if serving:
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(metrics: MetricsDep) -> Response:
    """Prometheus text exposition of this gateway process (see docs/operations.md)."""
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
