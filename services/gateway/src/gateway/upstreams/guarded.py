"""An upstream client behind its own circuit breaker (one per upstream: vision and reasoner).

After ``failure_threshold`` consecutive failures the upstream is not called for
``open_s`` seconds: callers get :class:`~gateway.errors.UpstreamCircuitOpenError` at once
(vision: a 503 with ``Retry-After``). The reasoner's guard, :class:`ReasonerGuard`, raises
:class:`~gateway.errors.ReasonerCircuitOpenError` instead, which the request service turns
into an answer from vision, degraded ``reasoner_circuit_open``. Then one request probes
the upstream (see :mod:`gateway.upstreams.breaker`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from gateway.errors import (
    ReasonerCircuitOpenError,
    UpstreamCircuitOpenError,
    UpstreamError,
    UpstreamRejectedError,
)
from gateway.upstreams.breaker import CircuitBreaker
from gateway.upstreams.client import UpstreamClient, UpstreamStream

if TYPE_CHECKING:
    from gateway.config import UpstreamSettings

logger = logging.getLogger(__name__)


def counts_as_failure(exc: UpstreamError) -> bool:
    """A 4xx is the request's fault (a bad image), not a sick upstream: it does not trip the circuit."""
    return not isinstance(exc, UpstreamRejectedError)


class GuardedUpstream:
    """``complete``/``open_stream``/``model_id`` of one upstream, skipped while its circuit is open."""

    open_error: type[UpstreamCircuitOpenError] = UpstreamCircuitOpenError

    def __init__(
        self,
        client: UpstreamClient,
        *,
        failure_threshold: int,
        open_s: float,
        success_on_open: bool = True,
        counts: Callable[[UpstreamError], bool] = counts_as_failure,
    ) -> None:
        self.client = client
        self.name = client.name
        self.breaker = CircuitBreaker(threshold=failure_threshold, open_s=open_s)
        # False for the reasoner: its stream only counts as a success once it gave a token
        # (the request service calls record_success then), else a reasoner that accepts and dies
        # would reset its failure count on every request.
        self._success_on_open = success_on_open
        self._counts = counts

    @classmethod
    def vision_from_settings(
        cls, upstreams: UpstreamSettings, session: aiohttp.ClientSession
    ) -> GuardedUpstream:
        """Vision behind ``GATEWAY_VISION_FAILURE_THRESHOLD`` / ``GATEWAY_VISION_CIRCUIT_OPEN_S``."""
        return cls(
            UpstreamClient.from_settings("vision", upstreams, session),
            failure_threshold=upstreams.vision_failure_threshold,
            open_s=upstreams.vision_circuit_open_s,
        )

    @property
    def circuit(self) -> str:
        """The breaker's state: ``closed``, ``open`` or ``half_open``."""
        return self.breaker.state

    async def complete(self, body: dict[str, Any], *, request_id: str | None) -> dict[str, Any]:
        self._check_open()
        try:
            answer = await self.client.complete(body, request_id=request_id)
        except UpstreamError as exc:
            self._failed(exc)
            raise
        self.record_success()
        return answer

    async def open_stream(
        self, body: dict[str, Any], *, request_id: str | None, can_fall_back: bool = True
    ) -> UpstreamStream:
        self._check_open()
        try:
            stream = await self.client.open_stream(body, request_id=request_id, can_fall_back=can_fall_back)
        except UpstreamError as exc:
            self._failed(exc)
            raise
        if self._success_on_open:
            self.record_success()
        return stream

    async def model_id(self) -> str:
        # Memoised by the client: only its first call goes out, so it does not take the probe.
        if self.breaker.is_open:
            raise self._open_error()
        try:
            return await self.client.model_id()
        except UpstreamError as exc:
            self._failed(exc)
            raise

    async def calls_tools(self) -> bool:
        """Whether the upstream's model calls tools (``GATEWAY_VISION_TOOLS``, else its readiness)."""
        return await self.client.calls_tools()

    async def readiness(self) -> dict[str, Any]:
        """The upstream's own readiness plus this gateway's view of it (the circuit)."""
        return {**await self.client.readiness(), "circuit": self.circuit}

    def record_success(self) -> None:
        if self.breaker.record_success():
            logger.info("%s answers again; circuit closed", self.name)

    def record_failure(self) -> None:
        if self.breaker.record_failure():
            logger.warning(
                "%s failed %d times in a row; circuit open for %gs",
                self.name,
                self.breaker.threshold,
                self.breaker.open_s,
            )

    def _failed(self, exc: UpstreamError) -> None:
        if self._counts(exc):
            self.record_failure()
        else:
            self.record_success()  # it answered: alive, even if it refused this request

    def _check_open(self) -> None:
        if not self.breaker.allow():
            raise self._open_error()

    def _open_error(self) -> UpstreamCircuitOpenError:
        return self.open_error(
            f"{self.name} circuit is open after {self.breaker.threshold} consecutive failures; "
            f"retrying it in {self.breaker.retry_in():.1f}s",
            upstream=self.name,
            retry_after=max(1, math.ceil(self.breaker.retry_in())),
        )


class ReasonerGuard(GuardedUpstream):
    """The reasoner behind its circuit breaker; every failure counts (its prompt is the gateway's own)."""

    open_error = ReasonerCircuitOpenError

    def __init__(self, client: UpstreamClient, *, failure_threshold: int, open_s: float) -> None:
        super().__init__(
            client,
            failure_threshold=failure_threshold,
            open_s=open_s,
            success_on_open=False,
            counts=lambda exc: True,
        )

    @classmethod
    def from_settings(cls, upstreams: UpstreamSettings, session: aiohttp.ClientSession) -> ReasonerGuard:
        """The reasoner behind ``GATEWAY_REASONER_FAILURE_THRESHOLD`` / ``_REASONER_CIRCUIT_OPEN_S``."""
        return cls(
            UpstreamClient.from_settings("reasoner", upstreams, session),
            failure_threshold=upstreams.reasoner_failure_threshold,
            open_s=upstreams.reasoner_circuit_open_s,
        )
