"""ASGI middleware: request ids (taken from the caller or made), access line and metrics, body limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access import QUIET_PATHS, AccessRecorder, RequestRecord, current_record
from gateway.errors import GatewayError, InvalidRequestError, PayloadTooLargeError

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
"""The current request's id, for log lines (see :class:`RequestIdLogFilter`)."""

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


class RequestIdLogFilter(logging.Filter):
    """Adds ``record.request_id`` so a log format can show ``%(request_id)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RequestContextMiddleware:
    """Takes or makes ``X-Request-ID`` (passed on to vision and reasoner), returns it, logs and counts."""

    def __init__(self, app: ASGIApp, *, recorder: AccessRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header(scope, "x-request-id")
        request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        record = RequestRecord()
        record_token = current_record.set(record)
        status = 500
        streamed = False
        first_byte_s: float | None = None
        started = time.perf_counter()
        in_flight = self.recorder.metrics.in_flight if scope["path"] not in QUIET_PATHS else None

        async def send_with_id(message: Message) -> None:
            nonlocal status, streamed, first_byte_s
            if message["type"] == "http.response.start":
                status = message["status"]
                streamed = any(
                    k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                    for k, v in message.get("headers", [])
                )
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            elif first_byte_s is None and message.get("body"):
                first_byte_s = time.perf_counter() - started
            await send(message)

        if in_flight is not None:
            in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if in_flight is not None:
                in_flight.dec()
            self.recorder.finish(
                record,
                method=scope["method"],
                path=scope["path"],
                endpoint=getattr(scope.get("route"), "path", None) or "unmatched",
                status=status,
                elapsed_s=time.perf_counter() - started,
                first_byte_s=first_byte_s,
                streamed=streamed,
            )
            current_record.reset(record_token)
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Refuses bodies above ``max_bytes`` with 413, by Content-Length and while reading."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, "content-length")
        if declared is not None and not declared.isdigit():
            await _send_error(scope, send, InvalidRequestError(f"invalid Content-Length header {declared!r}"))
            return
        if declared is not None and int(declared) > self.max_bytes:
            await _send_error(scope, send, self._too_large(f"{declared} bytes"))
            return
        # Count while reading too: a chunked upload has no Content-Length to check.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_error(scope, send, self._too_large(f"more than {self.max_bytes} bytes"))
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
            f"request body is {size}; at most {self.max_bytes} bytes are accepted "
            "(send smaller or fewer images)"
        )


async def _send_error(scope: Scope, send: Send, error: GatewayError) -> None:
    # Connection: close, because the unread rest of the body is still on the socket.
    headers = {**error.headers(), "Connection": "close"}
    response = JSONResponse(error.body(), status_code=error.status(), headers=headers)
    await response(scope, _disconnected, send)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


def header(scope: Scope, name: str) -> str | None:
    """A request header from an ASGI scope (``name`` lower-case)."""
    wanted = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None
