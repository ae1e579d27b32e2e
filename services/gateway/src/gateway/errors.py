"""The gateway's exceptions and the one table that maps them to HTTP.

::

    GatewayError                        500  base: every error the gateway raises on purpose
    ├── InvalidRequestError             400  the request is wrong; the message says what is accepted
    │   ├── ImageInputError             400  an image was refused (code from gateway.images.normalise:
    │   │                                    invalid_image, image_too_large, unsupported_image_format)
    │   ├── ImageFetchError             400  an image URL was blocked or could not be fetched
    │   ├── TooManyImagesError          400  more images than ``max_images_per_request``
    │   ├── NumberOutOfRangeError       400  a number past signed 64 bits, or not finite (gateway.api.numbers)
    │   ├── PromptTooLargeError         400  too many messages/parts, or a prompt over the text cap
    │   │                                    (gateway.answer.prompt_budget)
    │   ├── RouteConflictError          400  the model id, ``route`` field and header force different routes
    │   └── RouteCannotCallToolsError   400  a tools request forced ``direct`` to a vision that calls no tools
    ├── AuthenticationError             401  + WWW-Authenticate: no or wrong API key
    ├── ModelNotFoundError              404  ``model`` is not one of GET /v1/models
    ├── UnsupportedMediaTypeError       415  a chat body declared as something other than JSON
    ├── RateLimitedError                429  + Retry-After, x-ratelimit-*: over the limit
    │   └── AuthFailuresLimitedError    429  too many missing/wrong keys from one address
    ├── RateLimitUnavailableError       503  + Retry-After: Redis down and rate limits fail closed
    ├── RequestDeadlineError            504  + Retry-After: not answered within ``request_deadline_s``
    ├── ToolCallsUnavailableError       503  + Retry-After: a request that must call a tool, and the stage
    │                                        that calls (the reasoner) cannot answer (gateway.answer.tools)
    └── UpstreamError                   502  vision or reasoner failed (``.upstream`` names which)
        ├── UpstreamUnavailableError    503  + Retry-After: unreachable, or it dropped the connection
        │   ├── UpstreamServerError     503  + Retry-After: it answered 5xx (or an error event mid-stream)
        │   ├── UpstreamTimeoutError    503  + Retry-After: no answer in time
        │   ├── UpstreamOverloadedError 503  + Retry-After: it said 503/429 (its Retry-After kept)
        │   └── UpstreamCircuitOpenError 503 + Retry-After: failed repeatedly, not called for a while
        │       └── ReasonerCircuitOpenError 503  the reasoner's: always caught, the answer degrades
        ├── UpstreamProtocolError       502  it answered something that is not OpenAI JSON/SSE
        └── UpstreamRejectedError       4xx  it refused the request: its status and error body pass through

Every class of the tree is defined here and nowhere else. Lower layers (aiohttp, Redis,
gateway.images.normalise, gateway.images.fetch) are translated into this tree at the
boundary with ``raise X(...) from exc``. Reasoner failures rarely reach the table: the
request service catches them and answers from vision instead (see
``gateway.answer.degradation``). Rendering is one function, :func:`error_response`: the
handler table uses it, and so does the auth middleware, which refuses before any route.
FastAPI's own errors (validation, unknown routes and methods, bugs) get the handlers
every service shares (``flashsight_common.handlers``); a body over ``max_body_bytes`` is
refused (413 ``payload_too_large``) by ``flashsight_common.bodylimit`` before any route runs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from flashsight_common.errors import ApiError
from flashsight_common.handlers import Handler, api_error_response, install_handlers, service_handlers
from starlette.responses import JSONResponse

logger = logging.getLogger(__name__)


class GatewayError(ApiError):
    """Base of every error the gateway raises on purpose."""


class InvalidRequestError(GatewayError):
    """The request is malformed or asks for something not accepted."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_value"


class ImageInputError(InvalidRequestError):
    """An image was refused by admission (bad bytes, too large, unsupported format)."""

    default_code = "invalid_image"


class ImageFetchError(InvalidRequestError):
    """An image URL was blocked (SSRF policy) or could not be fetched."""

    default_code = "image_fetch_failed"


class TooManyImagesError(InvalidRequestError):
    """The request carries more images than allowed."""

    default_code = "too_many_images"


class NumberOutOfRangeError(InvalidRequestError):
    """A number in the request does not fit a signed 64-bit integer, or is not finite."""

    default_code = "number_out_of_range"


class PromptTooLargeError(InvalidRequestError):
    """Too many messages or content parts, or a prompt that costs more than the cap."""

    default_code = "prompt_too_large"


class RouteConflictError(InvalidRequestError):
    """Two ways of forcing the route disagree."""

    default_code = "route_conflict"


class RouteCannotCallToolsError(InvalidRequestError):
    """A tools request forced to ``direct``, and the vision model calls no tools."""

    default_code = "route_cannot_call_tools"


class AuthenticationError(GatewayError):
    """The request carries no API key, or one that is not accepted."""

    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="flashsight"'}


class RateLimitedError(GatewayError):
    """The caller used up its requests for the current window."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, limit_headers: dict[str, str]) -> None:
        super().__init__(message, retry_after=retry_after)
        self.limit_headers = limit_headers
        """The ``x-ratelimit-*`` headers of the refused request."""

    def headers(self) -> dict[str, str]:
        return {**super().headers(), **self.limit_headers}


class AuthFailuresLimitedError(RateLimitedError):
    """Too many requests with a missing or wrong API key from one client address."""

    default_code = "too_many_auth_failures"


class RateLimitUnavailableError(GatewayError):
    """Redis is down and the operator chose to fail closed (``rate_limit_fail_open=false``)."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "rate_limit_unavailable"
    default_retry_after = 5


class RequestDeadlineError(GatewayError):
    """The request was not answered within the gateway's overall deadline."""

    status_code = 504
    error_type = "timeout_error"
    default_code = "request_deadline_exceeded"
    default_retry_after = 5


class ToolCallsUnavailableError(GatewayError):
    """``tool_choice`` requires a call and the stage that calls tools cannot answer now.

    Vision's text answer (how other requests degrade) would break the caller's contract, so
    the request fails instead, retryable.
    """

    status_code = 503
    error_type = "service_unavailable"
    default_code = "tool_calls_unavailable"
    default_retry_after = 5


class ModelNotFoundError(GatewayError):
    """``model`` names no model the gateway serves."""

    status_code = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class UnsupportedMediaTypeError(GatewayError):
    """The body is declared as something other than JSON (``text/plain``, a form)."""

    status_code = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_media_type"


class UpstreamError(GatewayError):
    """An upstream (vision or reasoner) failed; ``upstream`` says which."""

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"

    def __init__(self, message: str, *, upstream: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.upstream = upstream


class UpstreamUnavailableError(UpstreamError):
    """The upstream could not be reached or answered 5xx."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "upstream_unavailable"
    default_retry_after = 5


class UpstreamServerError(UpstreamUnavailableError):
    """The upstream answered 5xx, or sent an error event mid-stream."""

    default_code = "upstream_server_error"


class UpstreamTimeoutError(UpstreamUnavailableError):
    """The upstream did not answer (or stopped streaming) in time."""

    default_code = "upstream_timeout"


class UpstreamOverloadedError(UpstreamUnavailableError):
    """The upstream refused work for now (503/429)."""

    error_type = "overloaded_error"
    default_code = "upstream_overloaded"
    default_retry_after = 1


class UpstreamCircuitOpenError(UpstreamUnavailableError):
    """The upstream failed repeatedly just now; it is not being called for a while."""

    default_code = "upstream_circuit_open"


class ReasonerCircuitOpenError(UpstreamCircuitOpenError):
    """The reasoner failed repeatedly just now; it is not being called for a while."""


class UpstreamProtocolError(UpstreamError):
    """The upstream answered something that is not OpenAI-shaped JSON or SSE."""

    default_code = "upstream_protocol_error"


class UpstreamRejectedError(UpstreamError):
    """The upstream refused the request with a 4xx; its status and body are passed through."""

    error_type = "invalid_request_error"

    def __init__(
        self, message: str, *, upstream: str, status: int, upstream_body: dict[str, Any] | None, **kwargs: Any
    ) -> None:
        super().__init__(message, upstream=upstream, **kwargs)
        self.upstream_status = status
        self.upstream_body = upstream_body

    def status(self) -> int:
        return self.upstream_status

    def body(self) -> dict[str, Any]:
        if self.upstream_body and isinstance(self.upstream_body.get("error"), dict):
            return self.upstream_body
        return super().body()


def error_response(exc: GatewayError) -> JSONResponse:
    """The one rendering of a gateway error: its status, OpenAI error body and headers."""
    return api_error_response(exc)


# The one handler table: exception class → handler (the most specific class wins, by MRO).
# GatewayError's 5xx are logged as warnings; FastAPI's validation errors, unknown
# routes/methods and bugs are handled as in every FlashSight service.
EXCEPTION_HANDLERS: dict[type[Exception], Handler] = service_handlers(
    GatewayError, logger, log_server_errors=True
)


def install_error_handlers(app: FastAPI) -> None:
    """Register :data:`EXCEPTION_HANDLERS` on ``app``."""
    install_handlers(app, EXCEPTION_HANDLERS)
