"""The OpenAI-compatible routes every model service exposes, plus health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from flashsight_common.schemas import ModelCard, ModelList, new_completion_id
from flashsight_common.sse import SSE_HEADERS, SSE_MEDIA_TYPE

from modelserver.deps import (
    BackendDep,
    EngineDep,
    MetricsDep,
    ReadinessDep,
    RequestIdDep,
    ServedModelDep,
    SettingsDep,
)
from modelserver.engine import Completion, Finished, RequestHandle, collect
from modelserver.errors import NotReadyError
from modelserver.metrics import CONTENT_TYPE_LATEST, ModelMetrics
from modelserver.protocol import (
    check_model,
    parse_chat_request,
    to_chat_completion,
    to_generation_request,
    tool_format_for,
)
from modelserver.streaming import stream_chat_chunks
from modelserver.tools import ToolDeltaWriter

logger = logging.getLogger(__name__)

router = APIRouter()

_CHAT_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
    }
}


@router.post("/v1/chat/completions", openapi_extra=_CHAT_BODY_SCHEMA)
async def chat_completions(
    request: Request, engine: EngineDep, settings: SettingsDep, backend: BackendDep,
    model_id: ServedModelDep, metrics: MetricsDep, request_id: RequestIdDep,
) -> Response:
    # The body is parsed here rather than by FastAPI so that bad JSON and bad fields get
    # the same OpenAI-shaped 400 as everything else, naming the field.
    body = parse_chat_request(await request.body())
    check_model(body.model, served=model_id, also=backend.model_id)
    generation = to_generation_request(
        body, request_id=request_id, default_max_tokens=settings.default_max_tokens
    )
    tool_format = tool_format_for(backend, generation)  # tools to a backend that cannot call → 400
    tools = (tool_format, generation.tools) if tool_format and generation.tools else None
    handle = engine.submit(generation)  # QueueFullError → 503 before any byte is sent
    completion_id = new_completion_id()
    if body.stream:
        chunks = stream_chat_chunks(
            handle, completion_id=completion_id, model=model_id, include_usage=body.include_usage(),
            on_finished=lambda event: _record(metrics, event),
            tools=ToolDeltaWriter(*tools) if tools else None,
        )
        return StreamingResponse(chunks, media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
    completion = await _complete_unless_disconnected(handle, request)
    if completion is None:
        # Nobody will read this; 499 ("client closed request") keeps the metrics honest.
        return Response(status_code=499)
    _record(metrics, completion)
    answer = to_chat_completion(completion, completion_id=completion_id, model=model_id, tools=tools)
    return JSONResponse(answer)


@router.get("/v1/models")
async def list_models(model_id: ServedModelDep) -> ModelList:
    return ModelList(data=[ModelCard(id=model_id)])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (say nothing about the model: that is /readyz)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(readiness: ReadinessDep, model_id: ServedModelDep, backend: BackendDep) -> JSONResponse:
    """200 once the model is loaded and warm; 503 + Retry-After before.

    Ready, it also says whether the model calls tools (``calls_tools``): known only once the
    model is loaded (GLM-4.6V's template decides), and what the gateway routes tool requests by.
    """
    if readiness.ready:
        calls_tools = getattr(backend, "tool_format", None) is not None
        return JSONResponse({"status": "ready", "model": model_id, "calls_tools": calls_tools})
    retry = NotReadyError.default_retry_after
    return JSONResponse(
        {"status": readiness.phase, "detail": readiness.detail}, status_code=503,
        headers={"Retry-After": str(retry)},
    )


@router.get("/metrics")
async def metrics_endpoint(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _record(metrics: ModelMetrics, done: Completion | Finished) -> None:
    metrics.generated_tokens.inc(done.completion_tokens)
    metrics.prompt_tokens.inc(done.prompt_tokens)
    if done.time_to_first_token_s is not None:
        metrics.time_to_first_token.observe(done.time_to_first_token_s)


async def _complete_unless_disconnected(handle: RequestHandle, request: Request) -> Completion | None:
    """Collect the answer, or cancel its row and return None if the client hangs up first."""
    answer = asyncio.ensure_future(collect(handle))
    hangup = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait({answer, hangup}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            logger.info("client disconnected; cancelled its generation")
            return None
        return answer.result()
    finally:
        handle.cancel()
        hangup.cancel()
        answer.cancel()


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
