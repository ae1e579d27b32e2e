"""The X-Request-ID contract every FlashSight service keeps, so one request can be followed
through the gateway, vision and reasoner logs.

A caller's ``X-Request-ID`` is kept when it is a plain token (letters, digits, ``._:/+=-``,
at most 128 characters), otherwise a fresh uuid4 hex is made. The id is stored in
``scope["state"]["request_id"]`` (read by :func:`read_request_id`, the routes' dependency),
set in :data:`request_id_var` for the request's log lines (:class:`RequestIdLogFilter`),
and returned on every response that passes through :class:`RequestIdMiddleware`. The
gateway passes it on to vision and reasoner, which keep it.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
"""The current request's id, for log lines (see :class:`RequestIdLogFilter`)."""

# A caller's id ends up in our logs and headers: only plain tokens are trusted.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


class RequestIdLogFilter(logging.Filter):
    """Adds ``record.request_id`` so a log format can show ``%(request_id)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RequestIdMiddleware:
    """Takes or makes ``X-Request-ID``, keeps it for the request's logs and returns it.

    Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched
    and a client disconnect still reaches the route. Add it outermost: every response,
    413s from the body limit included, then carries the id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header(scope, REQUEST_ID_HEADER)
        request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), id_header]}
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


async def read_request_id(request: Request) -> str:
    """The request's id as :class:`RequestIdMiddleware` stored it (``-`` without it).

    ``async`` although it never awaits: FastAPI runs a plain ``def`` dependency in a
    worker thread, a hop this one-line read does not need.
    """
    return str(request.scope.get("state", {}).get("request_id", "-"))


def header(scope: Scope, name: str) -> str | None:
    """A request header from an ASGI scope (``name`` lower-case)."""
    wanted = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None
