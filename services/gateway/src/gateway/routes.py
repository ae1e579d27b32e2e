"""The OpenAI-compatible routes, health and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from flashsight_common.schemas import ModelCard, ModelList
from flashsight_common.sse import SSE_HEADERS, SSE_MEDIA_TYPE
from pydantic import ValidationError

from gateway.deps import MetricsDep, PipelineDep, ReasonerDep, RedisGuardDep, RequestIdDep, VisionDep
from gateway.metrics import CONTENT_TYPE_LATEST
from gateway.routing import MODEL_ROUTES
from gateway.schemas import GatewayChatRequest

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
    pipeline: PipelineDep,
    request_id: RequestIdDep,
    x_flashsight_route: str | None = Header(default=None),
) -> Response:
    body = parse_chat_request(await request.body())
    header_route = x_flashsight_route.strip().lower() if x_flashsight_route else None
    job = await pipeline.prepare(body, request_id=request_id, header_route=header_route)
    if body.stream:
        events = await pipeline.stream(job)  # primed: vision down is still a 503 here
        # Timings and a mid-stream degradation are only known at the end: see the last chunk.
        return StreamingResponse(
            events, media_type=SSE_MEDIA_TYPE, headers={**SSE_HEADERS, **job.meta.headers()}
        )
    answer = await pipeline.complete(job)
    return JSONResponse(answer, headers=job.meta.headers())


@router.get("/v1/models")
async def list_models() -> ModelList:
    return ModelList(data=[ModelCard(id=model_id) for model_id in MODEL_ROUTES])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (says nothing about the upstreams: that is /readyz)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(vision: VisionDep, reasoner: ReasonerDep, redis: RedisGuardDep) -> JSONResponse:
    """503 unless vision and reasoner are ready; Redis down is reported but still 200.

    Why: without Redis every answer still flows (uncached), so taking the gateway out of
    rotation would turn a slowdown into an outage; without vision nothing can be answered,
    and without the reasoner the cascade route can only give degraded answers.
    """
    vision_ready, reasoner_ready, redis_ok = await asyncio.gather(
        vision.readiness(), reasoner.client.readiness(), redis.ping()
    )
    upstreams_ready = vision_ready["ready"] and reasoner_ready["ready"]
    status = ("ready" if redis_ok else "degraded") if upstreams_ready else "not_ready"
    body = {
        "status": status,
        "vision": vision_ready,
        "reasoner": reasoner_ready,
        "redis": {"ok": redis_ok, "detail": None if redis_ok else "unreachable: answers are served uncached"},
    }
    if upstreams_ready:
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(metrics: MetricsDep) -> Response:
    """Prometheus text exposition of this gateway process (see docs/operations.md)."""
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
