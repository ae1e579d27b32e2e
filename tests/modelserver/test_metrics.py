"""The model services' metrics: names, types, labels, per-app registries."""

from __future__ import annotations

from modelserver.metrics import ModelMetrics
from prometheus_client.parser import text_string_to_metric_families


def test_names_types_and_labels() -> None:
    metrics = ModelMetrics()
    metrics.track_queue_depth(lambda: 3, capacity=64)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    expected = {
        "flashsight_model_requests": "counter",
        "flashsight_model_queue_depth": "gauge",
        "flashsight_model_queue_capacity": "gauge",
        "flashsight_model_batch_size": "histogram",
        "flashsight_model_generated_tokens": "counter",
        "flashsight_model_prompt_tokens": "counter",
        "flashsight_model_time_to_first_token_seconds": "histogram",
        "flashsight_model_request_duration_seconds": "histogram",
    }
    assert {name: families[name].type for name in expected} == expected
    values = {s.name: s.value for f in families.values() for s in f.samples}
    assert values["flashsight_model_queue_depth"] == 3 and values["flashsight_model_queue_capacity"] == 64
    # one registry per app: another app's metrics start from nothing
    metrics.generated_tokens.inc(5)
    assert ModelMetrics().generated_tokens._value.get() == 0
