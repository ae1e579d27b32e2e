"""The circuit breaker: open after N failures, one half-open probe, success closes."""

from __future__ import annotations

from gateway.upstreams.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_then_admits_exactly_one_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, open_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    assert breaker.record_failure() is True
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_in() == 10
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.allow() is True  # the probe
    assert breaker.allow() is False  # everyone else waits for it
    assert breaker.record_success() is True
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_a_failed_probe_reopens_and_a_lost_probe_expires() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, open_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 5
    assert breaker.allow()  # probe taken, its caller never reports (cancelled)
    assert not breaker.allow()
    clock.now += 5
    assert breaker.allow()  # the lost probe expired: the circuit cannot wedge
