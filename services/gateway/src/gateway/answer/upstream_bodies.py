"""What the gateway sends each model: the bodies of its upstream chat requests.

The direct answer passes the caller's conversation (images already normalised into
``data:`` URLs), sampling, tool fields and thinking switch to vision; the cascade answer
sends the reasoner the conversation as text with the captions (see
:mod:`gateway.answer.prompts`), and the same fields. Vision answering in the reasoner's
place (degraded) is sent no tools and the tool history as text (gateway.answer.tools). A
caption request is the versioned caption prompt with fixed, deterministic sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.answer.prompts import CAPTION_PARAMS, caption_messages, reasoner_messages
from gateway.answer.tools import text_history
from gateway.schemas import GatewayChatRequest


def vision_body(request: GatewayChatRequest, model_id: str, *, with_tools: bool = True) -> dict[str, Any]:
    """The caller's conversation (normalised images), sampling and thinking switch, for the vision model.

    ``with_tools``: the tool fields and history as sent (vision answers a tools request);
    else none, and calls and results as text turns (vision answers in the reasoner's place).
    """
    if with_tools:
        messages = [m.model_dump(exclude_none=True) for m in request.messages]
        tools = request.tool_fields()
    else:
        messages, tools = text_history(request.messages), {}
    return {"model": model_id, "messages": messages, **request.sampling(), **tools, **request.thinking()}


def reasoner_body(request: GatewayChatRequest, captions: Sequence[str], model_id: str) -> dict[str, Any]:
    """Captions + the conversation as text + the caller's sampling, tool fields and thinking switch."""
    return {
        "model": model_id,
        "messages": reasoner_messages(request.messages, captions),
        **request.sampling(),
        **request.tool_fields(),
        **request.thinking(),
    }


def caption_body(prompt: str, image_data_url: str, model_id: str, *, max_tokens: int) -> dict[str, Any]:
    """Vision asked to caption one image with the versioned prompt (deterministic, not streamed)."""
    return {
        "model": model_id,
        "messages": caption_messages(prompt, image_data_url),
        "max_tokens": max_tokens,
        **CAPTION_PARAMS,
    }
