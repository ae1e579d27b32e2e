"""Prometheus metrics of the gateway, in a registry owned by its app (no globals).

Recorded in three places: the request middleware (requests, stage latencies, degraded
answers, time to first streamed byte, in-flight), the captioner (cache outcome per
distinct image looked up) and, at scrape time, the circuit breakers (their state).
``docs/operations.md`` says what each series means and what to alert on.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.schemas import FlashSightMeta

__all__ = ["CIRCUIT_STATES", "CONTENT_TYPE_LATEST", "STAGES", "GatewayMetrics"]

STAGES: tuple[str, ...] = ("admission", "caption", "vision", "reasoner", "total")
# Breaker state → gauge value: a higher number is worse, so max() over replicas reads well.
CIRCUIT_STATES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    """The ``flashsight_gateway_*`` series of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flashsight_gateway_requests_total",
            "HTTP requests by endpoint, route taken (none: no answer was routed) and status code",
            ["endpoint", "route", "status"],
            registry=self.registry,
        )
        self.stage_duration = Histogram(
            "flashsight_gateway_stage_duration_seconds",
            "Time spent per pipeline stage of answered requests (total: the whole request)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "flashsight_gateway_time_to_first_token_seconds",
            "Streamed answers: request to first byte of the stream (sent once a first token exists)",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.caption_cache = Counter(
            "flashsight_gateway_caption_cache_total",
            "Caption cache lookups per distinct image (unavailable: Redis down or skipped)",
            ["result"],
            registry=self.registry,
        )
        self.degraded = Counter(
            "flashsight_gateway_degraded_total",
            "Answers given by the vision model alone because the reasoner could not answer, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.circuit_state = Gauge(
            "flashsight_gateway_circuit_state",
            "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open",
            ["upstream"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "flashsight_gateway_in_flight",
            "API requests being handled right now (probes and /metrics excluded)",
            registry=self.registry,
        )
        for result in ("hit", "miss", "unavailable"):  # present at 0, so rate() works from the start
            self.caption_cache.labels(result=result)

    def track_circuit(self, upstream: str, read_state: Callable[[], str]) -> None:
        """Report ``read_state()`` (a breaker's ``state``) at every scrape."""
        self.circuit_state.labels(upstream=upstream).set_function(lambda: CIRCUIT_STATES[read_state()])

    def record_caption_lookups(self, *, hits: int, misses: int, unavailable: int) -> None:
        for result, count in (("hit", hits), ("miss", misses), ("unavailable", unavailable)):
            if count:
                self.caption_cache.labels(result=result).inc(count)

    def record_request(
        self,
        *,
        endpoint: str,
        status: int,
        meta: FlashSightMeta | None,
        elapsed_s: float,
        first_byte_s: float | None,
        streamed: bool,
    ) -> None:
        """One finished request; ``meta`` is None when no answer was routed (errors, probes, the page)."""
        route = meta.route if meta else "none"
        self.requests.labels(endpoint=endpoint, route=route, status=str(status)).inc()
        if meta is None:
            return
        for stage, ms in meta.timings_ms.model_dump(exclude_none=True).items():
            if stage != "total":
                self.stage_duration.labels(stage=stage).observe(ms / 1000)
        # total from the middleware's clock: it includes sending the last byte of a stream
        self.stage_duration.labels(stage="total").observe(elapsed_s)
        if meta.degraded and meta.degraded_reason:
            self.degraded.labels(reason=meta.degraded_reason).inc()
        if streamed and first_byte_s is not None and status == 200:
            self.time_to_first_token.labels(route=route).observe(first_byte_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
