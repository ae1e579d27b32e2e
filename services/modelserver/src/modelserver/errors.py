"""The model services' exceptions and the one table that maps them to HTTP.

::

    ModelServerError                   500  base: every error the runtime raises on purpose
    ├── InvalidRequestError            400  the request is wrong; the message says what is accepted
    │   ├── InvalidImageError          400  an image part is not a decodable data: URL image
    │   └── UnsupportedParameterError  400  a valid OpenAI parameter this backend cannot honour
    ├── PayloadTooLargeError           413  body larger than ``max_request_bytes``
    ├── ModelNotFoundError             404  ``model`` names a model this service does not serve
    ├── OverloadedError                503  + Retry-After: try again shortly
    │   └── QueueFullError             503  the batching queue is full
    ├── NotReadyError                  503  + Retry-After: still loading / warming up / stopping
    └── BackendError                   500  the model backend failed while generating

Backends raise these (wrapping their own errors with ``raise X(...) from exc``); the
handlers below turn them, FastAPI's validation errors, malformed JSON, unknown routes
and unexpected exceptions into the OpenAI error body
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from flashsight_common.errors import describe_validation_errors, error_body
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ModelServerError(Exception):
    """Base of every error the model-serving runtime raises on purpose."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    retry_after: ClassVar[int | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def body(self) -> dict[str, Any]:
        """The OpenAI error body for this error."""
        return error_body(self.message, type=self.error_type, param=self.param, code=self.code)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class InvalidRequestError(ModelServerError):
    """The request is malformed or asks for something not accepted."""

    status_code = 400
    error_type = "invalid_request_error"


class InvalidImageError(InvalidRequestError):
    """An image part could not be decoded (wrong scheme, bad base64, not an image, too large)."""

    default_code = "invalid_image"


class UnsupportedParameterError(InvalidRequestError):
    """A valid OpenAI parameter that this backend cannot honour (e.g. ``response_format``)."""

    default_code = "unsupported_parameter"


class PayloadTooLargeError(ModelServerError):
    """The request body exceeds ``max_request_bytes``."""

    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class ModelNotFoundError(ModelServerError):
    """The request's ``model`` is not the one this service serves."""

    status_code = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class OverloadedError(ModelServerError):
    """The service cannot take more work right now; retry after a short wait."""

    status_code = 503
    error_type = "overloaded_error"
    default_code = "overloaded"
    retry_after = 1


class QueueFullError(OverloadedError):
    """The batching queue is at ``max_queue``."""

    default_code = "queue_full"


class NotReadyError(ModelServerError):
    """The model is still loading or warming up (or the engine is stopping)."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "not_ready"
    retry_after = 5


class BackendError(ModelServerError):
    """The model backend failed while running a batch."""

    status_code = 500
    error_type = "server_error"
    default_code = "backend_error"


def error_response(
    status: int, message: str, *, type: str, param: str | None = None, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI-shaped JSON error response."""
    return JSONResponse(
        error_body(message, type=type, param=param, code=code), status_code=status, headers=headers
    )


async def _model_server_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelServerError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(
            400, "the request body must be JSON (Content-Type: application/json): it could not be parsed",
            type="invalid_request_error", code="invalid_json",
        )
    message, param = describe_validation_errors(errors)
    return error_response(400, message, type="invalid_request_error", param=param, code="invalid_value")


# Starlette raises HTTPException for unknown routes (404) and wrong methods (405).
_HTTP_ERROR_TYPES: dict[int, str] = {404: "not_found_error", 405: "invalid_request_error"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    messages = {
        404: f"no route {request.url.path}; see GET /v1/models and POST /v1/chat/completions",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }
    message = messages.get(exc.status_code, str(exc.detail))
    return error_response(
        exc.status_code, message,
        type=_HTTP_ERROR_TYPES.get(exc.status_code, "invalid_request_error" if exc.status_code < 500
                                   else "server_error"),
        headers=dict(exc.headers or {}),
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error",
                          code="internal_error")


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]

# The one handler table: exception class → handler (most specific classes are matched by MRO).
EXCEPTION_HANDLERS: dict[type[Exception], Handler] = {
    ModelServerError: _model_server_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
    Exception: _unexpected_error,
}


def install_error_handlers(app: FastAPI) -> None:
    """Register :data:`EXCEPTION_HANDLERS` on ``app``."""
    for exc_class, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
