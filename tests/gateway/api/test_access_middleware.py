"""gateway.api.access_middleware: every request is finished once, with its status and stream flag."""

from __future__ import annotations

from typing import Any

import httpx
from gateway.api.access_middleware import AccessMiddleware
from gateway.telemetry.access_log import RequestRecord, current_record
from gateway.telemetry.metrics import GatewayMetrics
from starlette.types import Receive, Scope, Send


class Recorder:
    """Collects what the middleware reports."""

    def __init__(self) -> None:
        self.metrics = GatewayMetrics()
        self.finished: list[dict[str, Any]] = []

    def finish(self, record: RequestRecord, **fields: Any) -> None:
        self.finished.append({"record": record, **fields})


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    assert current_record.get() is not None  # the route can fill the record in
    streamed = scope["path"] == "/stream"
    kind = b"text/event-stream" if streamed else b"application/json"
    await send({"type": "http.response.start", "status": 418, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": b"{}"})


async def test_status_stream_flag_and_first_byte_are_reported_once_per_request() -> None:
    recorder = Recorder()
    app = AccessMiddleware(_app, recorder=recorder)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.get("/plain")
        await client.get("/stream")
    plain, stream = recorder.finished
    assert (plain["status"], plain["streamed"], stream["streamed"]) == (418, False, True)
    assert plain["path"] == "/plain" and plain["endpoint"] == "unmatched"
    assert plain["first_byte_s"] is not None and plain["elapsed_s"] >= plain["first_byte_s"]
    assert current_record.get() is None
