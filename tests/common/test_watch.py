"""flashsight_common.watch: the status, stream flag and byte timing an access middleware reads."""

from __future__ import annotations

from typing import Any

from flashsight_common.watch import QUIET_PATHS, ResponseWatch, endpoint_of
from starlette.types import Message


async def test_the_watch_passes_every_message_on_and_notes_what_it_saw() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    watch = ResponseWatch(send)
    assert watch.status == 500 and watch.first_byte_s is None  # nothing answered yet
    start = {
        "type": "http.response.start",
        "status": 201,
        "headers": [(b"Content-Type", b"text/event-stream")],
    }
    await watch.send(start)
    await watch.send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await watch.send({"type": "http.response.body", "body": b""})
    assert sent[0] is start and len(sent) == 3
    assert watch.status == 201 and watch.streamed and watch.first_byte_s is not None
    assert watch.elapsed_s() >= watch.first_byte_s


def test_endpoints_are_route_templates_and_probes_are_quiet() -> None:
    class Route:
        path = "/v1/models"

    scope: dict[str, Any] = {"route": Route()}
    assert endpoint_of(scope) == "/v1/models" and endpoint_of({}) == "unmatched"
    assert {"/healthz", "/readyz", "/metrics"} == QUIET_PATHS
