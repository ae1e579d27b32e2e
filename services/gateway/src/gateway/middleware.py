"""The gateway's access middleware: one access line and the request metrics per request.

The X-Request-ID contract and the body limit are the shared ones
(:mod:`flashsight_common.requestid`, :mod:`flashsight_common.bodylimit`); ``main`` puts
:class:`~flashsight_common.requestid.RequestIdMiddleware` outside this one, so the
request id is set while the access line is written. Pure ASGI (not
``BaseHTTPMiddleware``) so streamed responses pass through untouched.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access import QUIET_PATHS, AccessRecorder, RequestRecord, current_record

CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a request whose client went away before it was answered: not a server error."""


class AccessMiddleware:
    """Opens the request's :class:`RequestRecord`, counts it in flight, and finishes it once sent."""

    def __init__(self, app: ASGIApp, *, recorder: AccessRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = RequestRecord()
        record_token = current_record.set(record)
        status = CLIENT_CLOSED_REQUEST  # the app returned without answering: the client left first
        streamed = False
        first_byte_s: float | None = None
        started = time.perf_counter()
        in_flight = self.recorder.metrics.in_flight if scope["path"] not in QUIET_PATHS else None

        async def send_observed(message: Message) -> None:
            nonlocal status, streamed, first_byte_s
            if message["type"] == "http.response.start":
                status = message["status"]
                streamed = any(
                    k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                    for k, v in message.get("headers", [])
                )
            elif first_byte_s is None and message.get("body"):
                first_byte_s = time.perf_counter() - started
            await send(message)

        if in_flight is not None:
            in_flight.inc()
        try:
            await self.app(scope, receive, send_observed)
        except asyncio.CancelledError:
            raise  # cancelled before answering: the client went away (or the server is stopping)
        except BaseException:
            if status == CLIENT_CLOSED_REQUEST:
                status = 500  # raised before answering: a bug of ours
            raise
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
