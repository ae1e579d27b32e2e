"""ASGI middleware of the model services: request ids, per-request metrics and logs, body limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched and
a client disconnect still reaches the route.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelserver.errors import InvalidRequestError, ModelServerError, PayloadTooLargeError
from modelserver.metrics import ModelMetrics

logger = logging.getLogger("modelserver.access")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
"""The current request's id, for log lines (see :class:`RequestIdLogFilter`)."""

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
# Probes would drown the log at info level.
_QUIET_ENDPOINTS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestIdLogFilter(logging.Filter):
    """Adds ``record.request_id`` so a log format can show ``%(request_id)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RequestContextMiddleware:
    """Takes or makes ``X-Request-ID``, returns it, and records metrics and one log line per request."""

    def __init__(self, app: ASGIApp, *, metrics: ModelMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, REQUEST_ID_HEADER)
        request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.metrics.request_duration.labels(endpoint=endpoint).observe(elapsed)
            level = logging.DEBUG if endpoint in _QUIET_ENDPOINTS else logging.INFO
            fields = {"method": scope["method"], "path": scope["path"], "status": status,
                      "latency_ms": round(elapsed * 1000, 1)}
            logger.log(level, "%s %s %d %.3fs request_id=%s", scope["method"], scope["path"], status,
                       elapsed, request_id, extra={"fields": fields})
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Refuses bodies above ``max_bytes`` with 413, by Content-Length and while reading.

    The body is read here (bounded) and replayed to the app, so an oversized chunked
    upload is refused before any route parses it.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, "content-length")
        if declared is not None and not declared.isdigit():
            await _send_error(scope, send, InvalidRequestError(f"invalid Content-Length header {declared!r}"))
            return
        if declared is not None and int(declared) > self.max_bytes:
            await _send_error(scope, send, self._too_large(declared))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_error(scope, send, self._too_large(f"more than {self.max_bytes}"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: waits for http.disconnect

        await self.app(scope, replay, send)

    def _too_large(self, size: str) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"request body is {size} bytes; at most {self.max_bytes} bytes are accepted "
            "(send smaller or fewer images)"
        )


async def _send_error(scope: Scope, send: Send, error: ModelServerError) -> None:
    # Connection: close, because the unread rest of the body is still on the socket.
    headers = {**error.headers(), "Connection": "close"}
    response = JSONResponse(error.body(), status_code=error.status_code, headers=headers)
    await response(scope, _discard_receive, send)


async def _discard_receive() -> Message:
    return {"type": "http.disconnect"}


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None
