"""The gateway's access middleware: one access line and the request metrics per request.

The X-Request-ID contract and the body limit are the shared ones
(:mod:`flashsight_common.requestid`, :mod:`flashsight_common.bodylimit`), and so is the
way a response is watched (:mod:`flashsight_common.watch`); ``main`` puts
:class:`~flashsight_common.requestid.RequestIdMiddleware` outside this one, so the
request id is set while the access line is written.
"""

from __future__ import annotations

import asyncio

from flashsight_common.watch import QUIET_PATHS, ResponseWatch, endpoint_of
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.telemetry.access_log import AccessRecorder, RequestRecord, current_record

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
        watch = ResponseWatch(send)
        in_flight = self.recorder.metrics.in_flight if scope["path"] not in QUIET_PATHS else None
        if in_flight is not None:
            in_flight.inc()
        client_left = False
        try:
            await self.app(scope, receive, watch.send)
            client_left = not watch.answered  # returned without answering: the client left first
        except asyncio.CancelledError:
            client_left = not watch.answered  # cancelled before answering: the client went away
            raise
        finally:
            if in_flight is not None:
                in_flight.dec()
            self.recorder.finish(
                record,
                method=scope["method"],
                path=scope["path"],
                endpoint=endpoint_of(scope),
                status=CLIENT_CLOSED_REQUEST if client_left else watch.status,
                elapsed_s=watch.elapsed_s(),
                first_byte_s=watch.first_byte_s,
                streamed=watch.streamed,
            )
            current_record.reset(record_token)
