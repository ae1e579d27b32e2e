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
from gateway.api.deps import (
    AnswerServiceDep,
    MetricsDep,
    ReasonerDep,
    RedisGuardDep,
    RequestIdDep,
    SettingsDep,
    VisionDep,
)
from gateway.api.numbers import check_numbers
from gateway.config import AnswerSettings
from gateway.errors import UnsupportedMediaTypeError
from gateway.fastjson import FastJSONResponse
from gateway.schemas import GatewayChatRequest
from gateway.telemetry.metrics import CONTENT_TYPE_LATEST

router = APIRouter()


def check_json_content_type(declared: str | None) -> None:
    """415 unless the body is declared JSON (or not declared at all).

    ``text/plain`` and form bodies are what a foreign web page can make a browser send
    without asking first (no CORS preflight); parsing them as JSON would let such a page
    post chat requests with whatever credentials the browser holds.
    """
    if declared is None or not declared.strip():
        return
    media_type = declared.split(";", 1)[0].strip().lower()
    subtype = media_type.removeprefix("application/")
    if subtype != media_type and (subtype == "json" or subtype.endswith("+json")):
        return
    raise UnsupportedMediaTypeError(
        f"Content-Type {media_type!r} is not accepted; send the body as JSON with "
        "'Content-Type: application/json'",
    )


def parse_chat_request(raw: bytes, answer: AnswerSettings | None = None) -> GatewayChatRequest:
    """Parse the body here, so bad JSON and bad fields both get the OpenAI-shaped 400 naming the field.

    Messages and content parts are counted before any is parsed (``answer``'s caps), and
    every number is range-checked (gateway.api.numbers).
    """
    answer = answer or AnswerSettings()
    limits = {"max_messages": answer.max_messages, "max_parts": answer.max_content_parts}
    try:
        request = GatewayChatRequest.model_validate_json(raw, context={"prompt_limits": limits})
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    # Messages hold only strings (their extra fields are dropped); every other field is passed on.
    check_numbers(request.model_dump(exclude={"messages"}, exclude_none=True))
    return request


@router.post("/v1/chat/completions")
async def chat_completions(
    request: Request,
    service: AnswerServiceDep,
    request_id: RequestIdDep,
    settings: SettingsDep,
    x_flashsight_route: str | None = Header(default=None),
    cache_control: str | None = Header(default=None),
) -> Response:
    check_json_content_type(request.headers.get("content-type"))
    body = parse_chat_request(await request.body(), settings.answer)
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


@router.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> dict[str, str]:
    """The process is alive (says nothing about the upstreams: that is /readyz)."""
    return {"status": "ok"}


@router.api_route("/readyz", methods=["GET", "HEAD"])
async def readyz(
    request: Request, vision: VisionDep, reasoner: ReasonerDep, redis: RedisGuardDep
) -> JSONResponse:
    """503 unless vision is ready; the reasoner or Redis down is reported but still 200.

    Each upstream entry also carries ``circuit`` (closed / open / half_open): this
    gateway's breaker for it. An open vision circuit means answers are 503 right now.

    Why: without vision nothing can be answered, so the gateway leaves rotation. Without
    the reasoner every request is still answered (cascade degrades to vision alone, marked),
    and without Redis answers flow uncached; taking every gateway replica out of a load
    balancer for either would turn a degradation into an outage. ``status`` says
    ``degraded`` then, with the reason in the entry's ``detail``.

    With API keys set, a caller without one gets ``status`` alone (same code): the entries
    name models and circuit states (gateway.api.auth_middleware, ``GATEWAY_OPS_PUBLIC``).
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
    if not getattr(request.state, "ops_detail", True):
        body = {"status": status}
    if serving:
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(metrics: MetricsDep) -> Response:
    """Prometheus text exposition of this gateway process (see docs/operations.md)."""
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
