"""gateway.upstreams.guarded: each upstream behind its circuit breaker (vision's and the reasoner's)."""

from __future__ import annotations

from typing import Any

import pytest
from gateway.errors import (
    ReasonerCircuitOpenError,
    UpstreamCircuitOpenError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamServerError,
)
from gateway.upstreams.guarded import GuardedUpstream, ReasonerGuard


class FakeClient:
    """An upstream client whose next answers are scripted: an exception, or a completion."""

    name = "vision"

    def __init__(self) -> None:
        self.failure: UpstreamError | None = None
        self.calls = 0

    async def complete(self, body: dict[str, Any], *, request_id: str | None = None) -> dict[str, Any]:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return {"model": "ocr-lite", "choices": []}

    async def model_id(self) -> str:
        return "ocr-lite"


def _server_error() -> UpstreamServerError:
    return UpstreamServerError("500", upstream="vision")


def _rejected() -> UpstreamRejectedError:
    return UpstreamRejectedError("bad image", upstream="vision", status=400, upstream_body=None)


async def test_vision_opens_after_its_threshold_and_is_then_not_called() -> None:
    client = FakeClient()
    guarded = GuardedUpstream(client, failure_threshold=2, open_s=30)  # type: ignore[arg-type]
    client.failure = _server_error()
    for _ in range(2):
        with pytest.raises(UpstreamServerError):
            await guarded.complete({}, request_id=None)
    assert guarded.circuit == "open"
    with pytest.raises(UpstreamCircuitOpenError) as info:
        await guarded.complete({}, request_id=None)
    assert (
        client.calls == 2
        and info.value.status() == 503
        and info.value.retry_after
        and info.value.retry_after >= 1
    )
    assert not isinstance(info.value, ReasonerCircuitOpenError)


async def test_a_4xx_is_the_requests_fault_and_does_not_trip_vision() -> None:
    client = FakeClient()
    guarded = GuardedUpstream(client, failure_threshold=1, open_s=30)  # type: ignore[arg-type]
    client.failure = _rejected()
    with pytest.raises(UpstreamRejectedError):
        await guarded.complete({}, request_id=None)
    assert guarded.circuit == "closed"


async def test_the_reasoner_counts_every_failure_and_raises_its_own_open_error() -> None:
    client = FakeClient()
    guard = ReasonerGuard(client, failure_threshold=1, open_s=30)  # type: ignore[arg-type]
    client.failure = _rejected()  # the gateway wrote the prompt: a 4xx is the reasoner's failure
    with pytest.raises(UpstreamRejectedError):
        await guard.complete({}, request_id=None)
    with pytest.raises(ReasonerCircuitOpenError):
        await guard.model_id()


async def test_a_success_closes_a_half_open_circuit() -> None:
    client = FakeClient()
    guarded = GuardedUpstream(client, failure_threshold=1, open_s=0)  # type: ignore[arg-type]
    client.failure = _server_error()
    with pytest.raises(UpstreamServerError):
        await guarded.complete({}, request_id=None)
    assert guarded.circuit == "half_open"
    client.failure = None
    await guarded.complete({}, request_id=None)
    assert guarded.circuit == "closed"
