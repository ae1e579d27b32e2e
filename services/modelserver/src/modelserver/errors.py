"""The model services' exceptions and the one table that maps them to HTTP.

::

    ModelServerError                   500  base: every error the runtime raises on purpose
    ├── InvalidRequestError            400  the request is wrong; the message says what is accepted
    │   ├── InvalidImageError          400  an image part is not a decodable data: URL image
    │   └── UnsupportedParameterError  400  a valid OpenAI parameter this backend cannot honour
    ├── ModelNotFoundError             404  ``model`` names a model this service does not serve
    ├── OverloadedError                503  + Retry-After: try again shortly
    │   └── QueueFullError             503  the batching queue is full
    ├── NotReadyError                  503  + Retry-After: still loading / warming up / stopping
    └── BackendError                   500  the model backend failed while generating

Backends raise these (wrapping their own errors with ``raise X(...) from exc``); the
table below turns them into the OpenAI error body
``{"error": {"message", "type", "param", "code"}}``, and FastAPI's validation errors,
malformed JSON, unknown routes and unexpected exceptions too, with the handlers every
FlashSight service shares (``flashsight_common.handlers``). A body over
``max_request_bytes`` is refused (413 ``payload_too_large``) by
``flashsight_common.bodylimit`` before any route runs.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from flashsight_common.errors import ApiError
from flashsight_common.handlers import Handler, install_handlers, service_handlers

logger = logging.getLogger(__name__)


class ModelServerError(ApiError):
    """Base of every error the model-serving runtime raises on purpose."""


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
    default_retry_after = 1


class QueueFullError(OverloadedError):
    """The batching queue is at ``max_queue``."""

    default_code = "queue_full"


class NotReadyError(ModelServerError):
    """The model is still loading or warming up (or the engine is stopping)."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "not_ready"
    default_retry_after = 5


class BackendError(ModelServerError):
    """The model backend failed while running a batch."""

    status_code = 500
    error_type = "server_error"
    default_code = "backend_error"


# The one handler table: exception class → handler (most specific classes are matched by MRO).
# FastAPI's validation errors, unknown routes/methods and bugs are handled as in every
# FlashSight service (flashsight_common.handlers).
EXCEPTION_HANDLERS: dict[type[Exception], Handler] = service_handlers(ModelServerError, logger)


def install_error_handlers(app: FastAPI) -> None:
    """Register :data:`EXCEPTION_HANDLERS` on ``app``."""
    install_handlers(app, EXCEPTION_HANDLERS)
