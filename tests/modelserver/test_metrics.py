"""The model services' metrics and logs: names, labels, per-app registries, JSON lines with the request id."""

from __future__ import annotations

import io
import json
import logging

from modelserver.logs import JsonFormatter
from modelserver.metrics import ModelMetrics
from modelserver.middleware import RequestIdLogFilter, request_id_var
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


def test_json_lines_carry_the_request_id_and_the_access_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("modelserver.test_json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = request_id_var.set("abc-123")
    try:
        logger.info("POST /v1/chat/completions 200", extra={"fields": {"status": 200, "latency_ms": 12.5}})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["request_id"] == "abc-123" and line["status"] == 200 and line["latency_ms"] == 12.5
    assert {"ts", "level", "logger", "message"} <= set(line)
