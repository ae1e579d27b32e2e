"""Requests that need no key never have their body read: key-exempt paths and every ``OPTIONS``.

The body-size middleware reads (up to 25 MB) and replays every body before the routes
run, which is right behind the key check and wrong in front of it: ``POST /healthz`` or
``OPTIONS /v1/chat/completions`` with a 25 MB body and no key used to be read whole, then
answered 405. Here, before the key check:

- ``OPTIONS`` on any path is answered 405 at once, the same for routes that exist and
  routes that do not (it must not tell them apart; the gateway serves no CORS preflight:
  its web page is same-origin);
- on the key-exempt paths (probes, the web page) the app sees an empty body, whatever
  was declared, and a request that declared one gets ``Connection: close`` so its unread
  bytes die with the socket.
"""

from __future__ import annotations

from flashsight_common.errors import error_body
from flashsight_common.requestid import header
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.auth_middleware import is_exempt

ALLOWED_METHODS = "GET, HEAD, POST"


def declares_body(scope: Scope) -> bool:
    """Whether the request says a body follows (a non-zero Content-Length, or any Transfer-Encoding)."""
    length = header(scope, "content-length")
    return header(scope, "transfer-encoding") is not None or (
        length is not None and length.strip() not in ("", "0")
    )


class BodylessMiddleware:
    """OPTIONS → 405 without routing; key-exempt paths → the app never reads the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with_body = declares_body(scope)
        close = [(b"connection", b"close")] if with_body else []
        if scope["method"] == "OPTIONS":
            body = error_body(
                f"method OPTIONS is not allowed; the gateway answers {ALLOWED_METHODS} "
                "(no CORS preflight: call the API from a server, or from the same-origin web page)",
                type="invalid_request_error",
            )
            headers = {"Allow": ALLOWED_METHODS} | ({"Connection": "close"} if with_body else {})
            await JSONResponse(body, status_code=405, headers=headers)(scope, _without_body(receive), send)
            return
        if not is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if close and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *close]}
            await send(message)

        await self.app(scope, _without_body(receive), send_closing)


def _without_body(receive: Receive) -> Receive:
    """A receive whose first read is an empty, complete body; later reads (disconnect listeners) pass on."""
    first = True

    async def receive_nothing() -> Message:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()  # body chunks are dropped by whoever listens, never gathered

    return receive_nothing
