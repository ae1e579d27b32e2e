"""The one OpenAI-shaped error body every FlashSight service returns.

``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``

Each service keeps its own exception tree (``errors.py``) and maps it to HTTP in one
handler table; this module only builds the body and turns pydantic validation errors
into a sentence that names the offending field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    """The ``error`` object."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """The whole error response body."""

    error: ErrorDetail


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error body as a plain dict, ready for a JSON response."""
    return ErrorBody(error=ErrorDetail(message=message, type=type, param=param, code=code)).model_dump()


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """Turn pydantic/FastAPI validation errors into (message, param).

    The message names each offending field with its dotted path, e.g.
    ``messages.0.content.1: unsupported content part type 'audio'; supported types: ...``.
    """
    parts: list[str] = []
    first_param: str | None = None
    for err in errors[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        # pydantic puts union member names into loc ("str", "list[...]"); they only confuse.
        loc = [p for p in loc if not p.startswith(("list[", "function-")) and p not in ("str", "int")]
        param = ".".join(loc) or None
        first_param = first_param or param
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{param}: {msg}" if param else msg)
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "; ".join(parts) or "invalid request", first_param
