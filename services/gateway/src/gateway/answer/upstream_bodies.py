"""What the gateway sends each model: the bodies of its upstream chat requests.

The direct answer passes the caller's conversation (images already normalised into
``data:`` URLs) and sampling to vision; the cascade answer sends the reasoner the
conversation as text with the captions (see :mod:`gateway.answer.prompts`); a caption
request is the versioned caption prompt with fixed, deterministic sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.answer.prompts import CAPTION_PARAMS, caption_messages, reasoner_messages
from gateway.schemas import GatewayChatRequest


def vision_body(request: GatewayChatRequest, model_id: str) -> dict[str, Any]:
    """The caller's conversation (normalised images) and sampling, for the vision model."""
    messages = [m.model_dump(exclude_none=True) for m in request.messages]
    return {"model": model_id, "messages": messages, **request.sampling()}


def reasoner_body(request: GatewayChatRequest, captions: Sequence[str], model_id: str) -> dict[str, Any]:
    """Captions + the conversation as text + the caller's sampling, for the reasoner."""
    return {
        "model": model_id,
        "messages": reasoner_messages(request.messages, captions),
        **request.sampling(),
    }


def caption_body(prompt: str, image_data_url: str, model_id: str, *, max_tokens: int) -> dict[str, Any]:
    """Vision asked to caption one image with the versioned prompt (deterministic, not streamed)."""
    return {
        "model": model_id,
        "messages": caption_messages(prompt, image_data_url),
        "max_tokens": max_tokens,
        **CAPTION_PARAMS,
    }
