"""The one OpenAI-shaped error body every FlashSight service returns.

``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``

Each service keeps its own exception tree (``errors.py``, rooted in :class:`ApiError`)
and maps it to HTTP in one handler table; this module builds the body, gives the trees
their common base, and turns pydantic validation errors into a sentence that names the
offending field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from flashsight_common.fields import refusal_message


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


class ApiError(Exception):
    """Base of a service's exception tree: each class knows its status, error body and headers.

    Subclasses set the class variables; an instance may override ``param``, ``code`` and
    ``retry_after`` (sent as ``Retry-After``).
    """

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    default_retry_after: ClassVar[int | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.retry_after = retry_after if retry_after is not None else self.default_retry_after

    def status(self) -> int:
        """The HTTP status (a method, so an error can pass on another server's status)."""
        return self.status_code

    def body(self) -> dict[str, Any]:
        """The OpenAI error body for this error."""
        return error_body(self.message, type=self.error_type, param=self.param, code=self.code)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


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
        if err.get("type") == "extra_forbidden" and loc:
            msg = refusal_message(loc[-1])  # a field the model does not take: say why
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{param}: {msg}" if param else msg)
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "; ".join(parts) or "invalid request", first_param
