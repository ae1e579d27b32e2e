"""Degrading instead of failing: why the reasoner could not answer, as a ``degraded_reason``.

When the reasoner fails (down, erroring, past its timeout, its circuit open) the request
service answers from vision alone and marks the metadata degraded with the reason this
table gives (``FlashSightMeta.mark_degraded``); the notice in the answer is added by
:mod:`gateway.answer.responses`. The reasoner's circuit breaker is
:class:`gateway.upstreams.guarded.ReasonerGuard`.
"""

from __future__ import annotations

from gateway.errors import (
    ReasonerCircuitOpenError,
    UpstreamError,
    UpstreamOverloadedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.schemas import DegradedReason

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
