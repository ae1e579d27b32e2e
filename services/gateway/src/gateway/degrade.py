"""Degrading instead of failing: when the reasoner cannot answer, vision answers, marked degraded.

The reasoner is reached through :class:`ReasonerGuard`, a circuit breaker around its
client: after a few consecutive failures calls are skipped for a while (reason
``reasoner_circuit_open``), so a dead reasoner costs no waiting at all.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.breaker import CircuitBreaker
from gateway.errors import (
    UpstreamError,
    UpstreamOverloadedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.schemas import DEGRADED_NOTICE, DegradedReason, FlashSightMeta
from gateway.upstream import UpstreamClient, UpstreamStream

logger = logging.getLogger(__name__)


class ReasonerCircuitOpenError(UpstreamUnavailableError):
    """The reasoner failed repeatedly just now; it is not being called for a while."""

    default_code = "upstream_circuit_open"


# Why the reasoner could not answer → the reported degraded_reason (most specific class wins).
DEGRADED_REASONS: dict[type[UpstreamError], DegradedReason] = {
    ReasonerCircuitOpenError: "reasoner_circuit_open",
    UpstreamTimeoutError: "reasoner_timeout",
    UpstreamOverloadedError: "reasoner_unavailable",
    UpstreamServerError: "reasoner_error",
    UpstreamUnavailableError: "reasoner_unavailable",
    UpstreamError: "reasoner_error",  # protocol errors, and 4xx to a prompt the gateway wrote
}


def degraded_reason(exc: UpstreamError) -> DegradedReason:
    """The ``degraded_reason`` for a reasoner failure."""
    for cls in type(exc).__mro__:
        if cls in DEGRADED_REASONS:
            return DEGRADED_REASONS[cls]
    return "reasoner_error"


def mark_degraded(meta: FlashSightMeta, reason: DegradedReason) -> None:
    """Record in the metadata that vision answered alone, and why."""
    meta.degraded = True
    meta.degraded_reason = reason
    meta.notice = DEGRADED_NOTICE


def with_notice(content: str | None) -> str:
    """The answer with the notice on its own first line, so a human reading it sees it too."""
    return f"{DEGRADED_NOTICE}\n{content or ''}"


class ReasonerGuard:
    """The reasoner client behind a circuit breaker; failures count, successes reset."""

    def __init__(self, client: UpstreamClient, *, failure_threshold: int, open_s: float) -> None:
        self.client = client
        self.breaker = CircuitBreaker(threshold=failure_threshold, open_s=open_s)

    async def complete(self, body: dict[str, Any], *, request_id: str | None) -> dict[str, Any]:
        self._check_open()
        try:
            answer = await self.client.complete(body, request_id=request_id)
        except UpstreamError:
            self.record_failure()
            raise
        self.record_success()
        return answer

    async def open_stream(self, body: dict[str, Any], *, request_id: str | None) -> UpstreamStream:
        self._check_open()
        try:
            return await self.client.open_stream(body, request_id=request_id)
        except UpstreamError:
            self.record_failure()
            raise

    async def model_id(self) -> str:
        self._check_open()
        try:
            return await self.client.model_id()
        except UpstreamError:
            self.record_failure()
            raise

    def record_success(self) -> None:
        if self.breaker.record_success():
            logger.info("reasoner answers again; circuit closed")

    def record_failure(self) -> None:
        if self.breaker.record_failure():
            logger.warning(
                "reasoner failed %d times in a row; answering from vision for %gs",
                self.breaker.threshold,
                self.breaker.open_s,
            )

    def _check_open(self) -> None:
        if not self.breaker.allow():
            raise ReasonerCircuitOpenError(
                "reasoner circuit is open after repeated failures", upstream=self.client.name
            )
