"""Degrading instead of failing: when the reasoner cannot answer, vision answers, marked degraded.

The reasoner is reached through :class:`ReasonerGuard`, a circuit breaker around its
client: after a few consecutive failures calls are skipped for a while (reason
``reasoner_circuit_open``), so a dead reasoner costs no waiting at all.
"""

from __future__ import annotations

import logging

from gateway.errors import (
    UpstreamError,
    UpstreamOverloadedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.upstreams.guarded import GuardedUpstream, UpstreamCircuitOpenError
from gateway.schemas import DEGRADED_NOTICE, DegradedReason, FlashSightMeta
from gateway.upstreams.client import UpstreamClient

logger = logging.getLogger(__name__)


class ReasonerCircuitOpenError(UpstreamCircuitOpenError):
    """The reasoner failed repeatedly just now; it is not being called for a while."""


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
