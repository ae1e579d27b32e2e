"""The reasoner's routes beside the shared OpenAI ones: the seed-compatible ``POST /generate``."""

from __future__ import annotations

from fastapi import APIRouter
from flashsight_common.schemas import Usage
from modelserver.deps import EngineDep, RequestIdDep, ServedModelDep, SettingsDep

from reasoner.schemas import GenerateRequest, GenerateResponse

router = APIRouter()


@router.post("/generate")
async def generate(
    body: GenerateRequest,
    engine: EngineDep,
    settings: SettingsDep,
    model_id: ServedModelDep,
    request_id: RequestIdDep,
) -> GenerateResponse:
    """Answer ``prompt`` through the same batching engine as ``/v1/chat/completions``."""
    request = body.to_generation_request(
        request_id=request_id, default_max_tokens=settings.default_max_tokens
    )
    completion = await engine.complete(request)
    return GenerateResponse(
        answer=completion.text,
        model=model_id,
        finish_reason=completion.finish_reason,
        usage=Usage.of(completion.prompt_tokens, completion.completion_tokens),
    )
