"""What every service's access middleware learns about a response while it is being sent.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched and a
client disconnect still reaches the route: the middleware hands :meth:`ResponseWatch.send`
to the app in place of ``send`` and reads the status, the stream flag, the time to the
first body byte and the total time once the app returns.
"""

from __future__ import annotations

import time

from starlette.types import Message, Scope, Send

# Probes and scrapes: logged at debug level only, and not counted as in-flight work.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def endpoint_of(scope: Scope) -> str:
    """The route template that served the request (``/v1/models``), or ``unmatched``."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


class ResponseWatch:
    """Passes messages on to ``send``, noting the status, whether it streams, and when bytes flowed."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = time.perf_counter()
        self.status = 500  # what the caller sees if the app raised before answering
        self.answered = False
        """Whether the app started a response (an app may also return without one: its client left)."""
        self.streamed = False
        self.first_byte_s: float | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.answered = True
            self.streamed = any(
                k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                for k, v in message.get("headers", [])
            )
        elif self.first_byte_s is None and message.get("body"):
            self.first_byte_s = time.perf_counter() - self.started
        await self._send(message)

    def elapsed_s(self) -> float:
        """Seconds since the request reached the middleware."""
        return time.perf_counter() - self.started
