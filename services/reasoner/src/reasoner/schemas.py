"""Wire models of the reasoner's own routes (the OpenAI ones live in ``flashsight_common``)."""

from __future__ import annotations

from typing import Annotated

from flashsight_common.schemas import ChatMessage, Usage
from modelserver.backend import GenerationRequest, SamplingParams
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TEMPERATURE = 0.7  # as /v1/chat/completions (modelserver.protocol)


class GenerateRequest(BaseModel):
    """Body of the seed-compatible ``POST /generate``: one prompt, answered as a user turn."""

    model_config = ConfigDict(extra="ignore")

    prompt: Annotated[str, Field(min_length=1)]
    max_tokens: Annotated[int | None, Field(ge=1)] = None
    temperature: Annotated[float | None, Field(ge=0.0, le=2.0)] = None
    seed: int | None = None

    def to_generation_request(self, *, request_id: str, default_max_tokens: int) -> GenerationRequest:
        sampling = SamplingParams(
            max_tokens=self.max_tokens or default_max_tokens,
            temperature=DEFAULT_TEMPERATURE if self.temperature is None else self.temperature,
            seed=self.seed,
        )
        return GenerationRequest(
            request_id=request_id, messages=[ChatMessage(role="user", content=self.prompt)], sampling=sampling
        )


class GenerateResponse(BaseModel):
    """``{"answer": ...}`` as the seed's client reads it, plus the model and usage."""

    answer: str
    model: str
    finish_reason: str
    usage: Usage
