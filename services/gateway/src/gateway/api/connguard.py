"""Connections that send nothing, or send slowly, are closed; their number is capped.

uvicorn starts its keep-alive timer only after a first response, so a socket that
connects and sends nothing, or trickles its request head or body, used to be held for
ever: a few hundred of them use up the file descriptors and every new client is refused.
:class:`GuardedHttpProtocol` (the gateway's HTTP/1 protocol, built on the header-capped
httptools one) adds three limits, from :class:`ConnectionLimits`:

- ``head_timeout_s``: a new connection, and each request on it from its first byte, must
  deliver its complete request line + headers within this time; else 408 and close (an
  idle new connection that sent nothing is just closed). Idle keep-alive connections
  between requests keep uvicorn's own ``timeout_keep_alive``.
- ``body_timeout_s``: a request body must be complete within this time of its head;
  else 408 (or, when an answer is already on its way, a plain close). The app sees a
  disconnect, which the access log records as 499.
- ``max_connections``: a connection beyond this many open ones is answered 503 and closed
  at once (it never reaches the app), so a flood costs the gateway one socket each only
  for as long as it takes to refuse it.

uvicorn's ``Config`` carries the limits (``config.connection_limits``, set by
``gateway.__main__``), so worker processes get them with the rest of their config.
"""

from __future__ import annotations

from asyncio import Transport
from asyncio.events import TimerHandle
from dataclasses import dataclass

from gateway.api.httpserver import HeaderCappedHttpToolsProtocol


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a client may take to send a request, and how many connections may be open."""

    head_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 512


class GuardedHttpProtocol(HeaderCappedHttpToolsProtocol):
    """The header-capped httptools protocol plus head/body timeouts and a connection cap."""

    _head_timer: TimerHandle | None = None
    _body_timer: TimerHandle | None = None
    _head_started = False

    @property
    def limits(self) -> ConnectionLimits:
        return getattr(self.config, "connection_limits", None) or ConnectionLimits()

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.logger.warning("Refused a connection: %d open (the cap)", self.limits.max_connections)
            self.refuse(503, f"the gateway holds its maximum of {self.limits.max_connections} connections")
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._head_started = True
        self._arm_head_timer()  # a request on a kept-alive connection: from its first byte
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = None
        self._head_started = False
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._head_started:
            self.transport.close()  # connected and sent nothing: no one to answer
            return
        self.refuse(
            408, f"the request line and headers did not arrive within {self.limits.head_timeout_s:g}s"
        )

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # answered without reading it all (e.g. a 401): nothing more to say
            return
        self.refuse(
            408, f"the request body did not arrive within {self.limits.body_timeout_s:g}s", current=True
        )

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            self._cancel(timer)
        self._head_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer: TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
