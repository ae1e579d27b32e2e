"""The framework-level error handlers every FlashSight service installs, in the OpenAI shape.

FastAPI and Starlette raise their own exceptions before a service's code runs: request
validation (→ 400 naming the field, or ``invalid_json`` for a body that is not JSON),
unknown routes and methods (→ 404 / 405), and anything unexpected (→ 500, logged with
its traceback: a 500 is a bug). Each service builds its ONE handler table from its own
exception tree plus :func:`framework_handlers` (:func:`service_handlers` builds both),
and registers it with :func:`install_handlers`. :func:`api_error_response` is the one place
an :class:`~flashsight_common.errors.ApiError` becomes a response, for the handlers and for
middleware that refuses a request before any route runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flashsight_common.errors import ApiError, describe_validation_errors, error_body
from flashsight_common.requestid import read_request_id

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def error_response(
    status: int,
    message: str,
    *,
    type: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI-shaped JSON error response."""
    return JSONResponse(
        error_body(message, type=type, param=param, code=code), status_code=status, headers=headers
    )


def api_error_response(exc: ApiError) -> JSONResponse:
    """The response for one of a service's own errors: its status, OpenAI body and headers."""
    return JSONResponse(exc.body(), status_code=exc.status(), headers=exc.headers())


def api_error_handler(logger: logging.Logger, *, log_server_errors: bool) -> Handler:
    """The handler of a service's own exception tree (5xx logged as a warning when asked)."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        if log_server_errors and exc.status() >= 500:
            logger.warning(
                "%s %s → %d %s: %s", request.method, request.url.path, exc.status(), exc.code, exc.message
            )
        return api_error_response(exc)

    return handle


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation: 400, naming the field and what it accepts."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(
            400,
            "the request body must be JSON (Content-Type: application/json): it could not be parsed",
            type="invalid_request_error",
            code="invalid_json",
        )
    message, param = describe_validation_errors(errors)
    return error_response(400, message, type="invalid_request_error", param=param, code="invalid_value")


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's HTTPException: unknown routes (404) and wrong methods (405) above all."""
    assert isinstance(exc, StarletteHTTPException)
    messages = {
        404: f"no route {request.url.path}; see GET /v1/models and POST /v1/chat/completions",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }
    kind = {404: "not_found_error"}.get(exc.status_code, "invalid_request_error")
    return error_response(
        exc.status_code,
        messages.get(exc.status_code, str(exc.detail)),
        type=kind if exc.status_code < 500 else "server_error",
        headers=dict(exc.headers or {}),
    )


def unexpected_error(logger: logging.Logger) -> Handler:
    """The 500 handler, logging to the service's own ``errors`` logger."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        # A 500 is a bug: log it with the traceback, and tell the caller only how to find it.
        # The exception's text stays in the log: it can carry paths, hosts or data.
        logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        message = (
            f"internal error ({type(exc).__name__}); the server log has the details "
            f"under request id {await read_request_id(request)}"
        )
        return error_response(500, message, type="server_error", code="internal_error")

    return handle


def framework_handlers(logger: logging.Logger) -> dict[type[Exception], Handler]:
    """The framework's exceptions → handlers, for a service's table (500s logged to ``logger``)."""
    return {
        RequestValidationError: validation_error,
        StarletteHTTPException: http_error,
        Exception: unexpected_error(logger),
    }


def service_handlers(
    base: type[ApiError], logger: logging.Logger, *, log_server_errors: bool = False
) -> dict[type[Exception], Handler]:
    """A service's ONE handler table: its exception tree (rooted in ``base``), then the framework's."""
    return {
        base: api_error_handler(logger, log_server_errors=log_server_errors),
        **framework_handlers(logger),
    }


def install_handlers(app: FastAPI, table: Mapping[type[Exception], Handler]) -> None:
    """Register a handler table on ``app`` (the most specific class wins, by MRO)."""
    for exc_class, handler in table.items():
        app.add_exception_handler(exc_class, handler)
