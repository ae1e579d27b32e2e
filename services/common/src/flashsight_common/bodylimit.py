"""The request body limit every FlashSight service enforces: 413 in the OpenAI error shape.

The body is read here (bounded) and replayed to the app, so an oversized upload is
refused before any route parses it, whether it declares its size (Content-Length) or
not (chunked).
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flashsight_common.errors import error_body
from flashsight_common.requestid import header


class BodySizeLimitMiddleware:
    """Refuses bodies above ``max_bytes`` with 413, by Content-Length and while reading.

    ``bad_length_code`` is the ``code`` of the 400 for a Content-Length that is not a
    number: each service's own ``InvalidRequestError`` default (the gateway's is
    ``invalid_value``, the model services' ``None``), so their bodies stay as they were.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, bad_length_code: str | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.bad_length_code = bad_length_code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, "content-length")
        # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses.
        if declared is not None and not (declared.isascii() and declared.isdigit()):
            refusal = f"invalid Content-Length header {declared!r}"
            await _send_error(scope, send, 400, refusal, code=self.bad_length_code)
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._refuse(scope, send, f"{declared} bytes")
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
                await self._refuse(scope, send, f"more than {self.max_bytes} bytes")
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

    async def _refuse(self, scope: Scope, send: Send, size: str) -> None:
        message = (
            f"request body is {size}; at most {self.max_bytes} bytes are accepted "
            "(send smaller or fewer images)"
        )
        await _send_error(scope, send, 413, message, code="payload_too_large")


async def _send_error(scope: Scope, send: Send, status: int, message: str, *, code: str | None) -> None:
    # Connection: close, because the unread rest of the body is still on the socket.
    body = error_body(message, type="invalid_request_error", code=code)
    response = JSONResponse(body, status_code=status, headers={"Connection": "close"})
    await response(scope, _disconnected, send)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
