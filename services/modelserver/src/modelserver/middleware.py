"""The model services' access middleware: per-request metrics and one log line per request.

The X-Request-ID contract and the body limit are the shared ones
(:mod:`flashsight_common.requestid`, :mod:`flashsight_common.bodylimit`); ``app`` puts
:class:`~flashsight_common.requestid.RequestIdMiddleware` outside this one, so the
request id is set while the access line is written. The response is watched the way
every service watches it (:mod:`flashsight_common.watch`).
"""

from __future__ import annotations

import logging

from flashsight_common.requestid import request_id_var
from flashsight_common.watch import QUIET_PATHS, ResponseWatch, endpoint_of
from starlette.types import ASGIApp, Receive, Scope, Send

from modelserver.metrics import ModelMetrics

logger = logging.getLogger("modelserver.access")


class AccessMiddleware:
    """Counts and times each request by endpoint and status, and logs one line for it."""

    def __init__(self, app: ASGIApp, *, metrics: ModelMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watch = ResponseWatch(send)
        try:
            await self.app(scope, receive, watch.send)
        finally:
            elapsed, status, endpoint = watch.elapsed_s(), watch.status, endpoint_of(scope)
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.metrics.request_duration.labels(endpoint=endpoint).observe(elapsed)
            level = logging.DEBUG if endpoint in QUIET_PATHS else logging.INFO
            fields = {"method": scope["method"], "path": scope["path"], "status": status,
                      "latency_ms": round(elapsed * 1000, 1)}
            logger.log(level, "%s %s %d %.3fs request_id=%s", scope["method"], scope["path"], status,
                       elapsed, request_id_var.get(), extra={"fields": fields})
