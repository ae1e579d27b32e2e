"""The model services' access middleware: per-request metrics and one log line per request.

The X-Request-ID contract and the body limit are the shared ones
(:mod:`flashsight_common.requestid`, :mod:`flashsight_common.bodylimit`); ``app`` puts
:class:`~flashsight_common.requestid.RequestIdMiddleware` outside this one, so the
request id is set while the access line is written. Pure ASGI (not
``BaseHTTPMiddleware``) so streamed responses pass through untouched and a client
disconnect still reaches the route.
"""

from __future__ import annotations

import logging
import time

from flashsight_common.requestid import request_id_var
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelserver.metrics import ModelMetrics

logger = logging.getLogger("modelserver.access")

# Probes would drown the log at info level.
_QUIET_ENDPOINTS = frozenset({"/healthz", "/readyz", "/metrics"})


class AccessMiddleware:
    """Counts and times each request by endpoint and status, and logs one line for it."""

    def __init__(self, app: ASGIApp, *, metrics: ModelMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed = time.perf_counter() - started
            endpoint = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.metrics.request_duration.labels(endpoint=endpoint).observe(elapsed)
            level = logging.DEBUG if endpoint in _QUIET_ENDPOINTS else logging.INFO
            fields = {"method": scope["method"], "path": scope["path"], "status": status,
                      "latency_ms": round(elapsed * 1000, 1)}
            logger.log(level, "%s %s %d %.3fs request_id=%s", scope["method"], scope["path"], status,
                       elapsed, request_id_var.get(), extra={"fields": fields})
