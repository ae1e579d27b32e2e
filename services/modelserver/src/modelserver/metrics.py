"""Prometheus metrics of one model service, in a registry owned by its app (no globals)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ModelMetrics"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ModelMetrics:
    """The ``flashsight_model_*`` series of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flashsight_model_requests_total", "HTTP requests by route and status code",
            ["endpoint", "status"], registry=self.registry,
        )
        self.queue_depth = Gauge(
            "flashsight_model_queue_depth", "Requests waiting for a batch", registry=self.registry
        )
        self.batch_size = Histogram(
            "flashsight_model_batch_size", "Requests per batch run by the backend",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64), registry=self.registry,
        )
        self.generated_tokens = Counter(
            "flashsight_model_generated_tokens_total", "Completion tokens generated", registry=self.registry
        )
        self.prompt_tokens = Counter(
            "flashsight_model_prompt_tokens_total", "Prompt tokens of finished requests",
            registry=self.registry,
        )
        self.queue_capacity = Gauge(
            "flashsight_model_queue_capacity", "Queued requests beyond which the service answers 503",
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "flashsight_model_time_to_first_token_seconds", "From queueing to the first decoded text",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.request_duration = Histogram(
            "flashsight_model_request_duration_seconds", "Whole HTTP request time, streams included",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )

    def track_queue_depth(self, read_depth: Callable[[], float], *, capacity: int) -> None:
        self.queue_depth.set_function(read_depth)
        self.queue_capacity.set(capacity)

    def render(self) -> bytes:
        return generate_latest(self.registry)
