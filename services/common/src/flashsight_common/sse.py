"""Server-sent-events framing for OpenAI-style streams (``data: {...}`` and ``data: [DONE]``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from pydantic import BaseModel

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_MEDIA_TYPE = "text/event-stream"


def encode_event(payload: BaseModel | dict[str, Any]) -> bytes:
    """One ``data:`` event; ``None`` fields of models are left out, as OpenAI does."""
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(exclude_none=True)
    else:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + body.encode() + b"\n\n"


class SSEProtocolError(ValueError):
    """An upstream stream was not valid OpenAI-style SSE."""


async def iter_events(lines: AsyncIterable[str]) -> AsyncIterator[dict[str, Any]]:
    """Decode the JSON payloads of an SSE stream given as text lines; stops at ``[DONE]``.

    Comment lines and non-``data`` fields are skipped. A payload that is not a JSON object
    raises :class:`SSEProtocolError`.
    """
    buffer: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if buffer:
                data = "\n".join(buffer)
                buffer.clear()
                if data.strip() == "[DONE]":
                    return
                yield _decode(data)
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            buffer.append(value[1:] if value.startswith(" ") else value)
    if buffer:
        data = "\n".join(buffer)
        if data.strip() != "[DONE]":
            yield _decode(data)


def _decode(data: str) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise SSEProtocolError(f"upstream sent a non-JSON event: {data[:80]!r}") from exc
    if not isinstance(payload, dict):
        # Every OpenAI stream event is an object; anything else would fail later, far from here.
        raise SSEProtocolError(f"upstream sent an event that is not a JSON object: {data[:80]!r}")
    return payload
