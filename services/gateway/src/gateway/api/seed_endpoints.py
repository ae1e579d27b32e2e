"""The seed articles' endpoints, as thin adapters over the same request service.

``POST /infer`` {"image_url","prompt"}, ``POST /caption`` (multipart ``file``),
``POST /chat`` (multipart ``image`` + ``text``), ``POST /v1/multimodal/completion``
(multipart ``image`` + ``prompt``). Each builds an OpenAI chat request and runs it
through :meth:`gateway.answer.service.AnswerService.answer`, the path
``/v1/chat/completions`` takes: routing, caching and degrading behave exactly as there,
and so do the text cap, the request deadline and load shedding (each is counted in
flight; under overload its answer is capped, greedy, or the holding reply, flagged in
``flashsight``). ``/caption`` goes through :meth:`~gateway.answer.service.AnswerService.caption_upload`.

The exact answer cache is bypassed (``flashsight.answer_cache``: ``bypass``, as
docs/operations.md says): the seed shapes carry no ``temperature`` or ``seed``, so their
answers are sampled, not deterministic, and no ``Cache-Control`` to opt out with; they run
without a cache scope, which the cache never looks up or stores under.

``/caption`` is counted in flight but never shed: its vision request is the gateway's own
caption prompt (no caller ``max_tokens`` or temperature to cut), and a holding reply in
``caption`` would read as the image's caption, with no ``flashsight`` to flag it.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, UploadFile

from gateway.answer.service import AnswerService
from gateway.api.deps import AnswerServiceDep, RequestIdDep
from gateway.schemas import (
    CaptionResponse,
    ChatSeedResponse,
    FlashSightMeta,
    GatewayChatRequest,
    InferRequest,
    InferResponse,
    MultimodalResponse,
)

router = APIRouter(tags=["seed-compatible"])

RouteHeader = Annotated[str | None, Header(alias="X-FlashSight-Route")]


async def _ask(
    service: AnswerService,
    *,
    image_url: str | None,
    question: str,
    request_id: str,
    header_route: str | None,
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": question}]
    if image_url:
        content.insert(0, {"type": "image_url", "image_url": {"url": image_url}})
    request = GatewayChatRequest.model_validate({"messages": [{"role": "user", "content": content}]})
    # cache_scope=None: the answer cache is bypassed (see the module docstring)
    answered = await service.answer(
        request, request_id=request_id, header_route=header_route, cache_scope=None
    )
    assert answered.completion is not None  # the request asked for no stream
    return answered.completion


async def _upload_data_url(upload: UploadFile | None) -> str | None:
    # Sent untyped: the admission step sniffs the real format from the bytes.
    if upload is None:
        return None
    return "data:application/octet-stream;base64," + base64.b64encode(await upload.read()).decode("ascii")


def _text(answer: dict[str, Any]) -> str:
    return str(answer["choices"][0].get("message", {}).get("content") or "")


@router.post("/infer")
async def infer(
    body: InferRequest,
    service: AnswerServiceDep,
    request_id: RequestIdDep,
    route: RouteHeader = None,
) -> InferResponse:
    answer = await _ask(
        service,
        image_url=body.image_url,
        question=body.prompt,
        request_id=request_id,
        header_route=route,
    )
    meta = FlashSightMeta.model_validate(answer["flashsight"])
    return InferResponse(
        text=_text(answer),
        confidence=answer.get("confidence"),
        route=meta.route,
        model=answer["model"],
        flashsight=meta,
    )


@router.post("/caption")
async def caption(
    file: Annotated[UploadFile, File()], service: AnswerServiceDep, request_id: RequestIdDep
) -> CaptionResponse:
    captions = await service.caption_upload(await file.read(), param="file", request_id=request_id)
    return CaptionResponse(
        caption=captions.texts[0], model=captions.vision_model or "unknown", cache=captions.cache or "miss"
    )


@router.post("/chat")
async def chat(
    service: AnswerServiceDep,
    request_id: RequestIdDep,
    text: Annotated[str, Form(min_length=1)],
    image: Annotated[UploadFile | None, File()] = None,
    route: RouteHeader = None,
) -> ChatSeedResponse:
    answer = await _ask(
        service,
        image_url=await _upload_data_url(image),
        question=text,
        request_id=request_id,
        header_route=route,
    )
    said = _text(answer)
    return ChatSeedResponse(
        answer=said,
        text=said,
        model=answer["model"],
        flashsight=FlashSightMeta.model_validate(answer["flashsight"]),
    )


@router.post("/v1/multimodal/completion")
async def multimodal_completion(
    service: AnswerServiceDep,
    request_id: RequestIdDep,
    image: Annotated[UploadFile, File()],
    prompt: Annotated[str, Form(min_length=1)],
    route: RouteHeader = None,
) -> MultimodalResponse:
    answer = await _ask(
        service,
        image_url=await _upload_data_url(image),
        question=prompt,
        request_id=request_id,
        header_route=route,
    )
    return MultimodalResponse(
        text=_text(answer),
        model=answer["model"],
        flashsight=FlashSightMeta.model_validate(answer["flashsight"]),
    )
