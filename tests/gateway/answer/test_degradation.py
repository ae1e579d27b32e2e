"""gateway.answer.degradation: each way the reasoner fails has its own degraded_reason."""

from __future__ import annotations

import pytest
from gateway.answer.degradation import degraded_reason
from gateway.errors import (
    ReasonerCircuitOpenError,
    UpstreamError,
    UpstreamOverloadedError,
    UpstreamProtocolError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ReasonerCircuitOpenError("open", upstream="reasoner"), "reasoner_circuit_open"),
        (UpstreamTimeoutError("slow", upstream="reasoner"), "reasoner_timeout"),
        (UpstreamOverloadedError("busy", upstream="reasoner"), "reasoner_unavailable"),
        (UpstreamUnavailableError("down", upstream="reasoner"), "reasoner_unavailable"),
        (UpstreamServerError("500", upstream="reasoner"), "reasoner_error"),
        (UpstreamProtocolError("junk", upstream="reasoner"), "reasoner_error"),
        (UpstreamRejectedError("400", upstream="reasoner", status=400, upstream_body=None), "reasoner_error"),
        (UpstreamError("other", upstream="reasoner"), "reasoner_error"),
    ],
)
def test_the_most_specific_reason_wins(error: UpstreamError, reason: str) -> None:
    assert degraded_reason(error) == reason
