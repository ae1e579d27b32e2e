"""One request followed through the real stack: its id in all three logs, its cache hit in /metrics.

Every service runs as a real process logging JSON (``*_LOG_FORMAT=json``, as compose
sets); the test reads their log files the way an operator would (docs/operations.md).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devkit.processes import ServiceProcess
from devkit.screens import as_data_url, order_screenshot
from devkit.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CASCADE_QUESTION = "为什么这个订单还没有发货?"


def json_lines(service: ServiceProcess) -> list[dict[str, Any]]:
    """The JSON log lines a service wrote so far (other lines, e.g. a library's print, skipped)."""
    assert service.log_path is not None
    lines = []
    for raw in service.log_path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def lines_with_id(service: ServiceProcess, request_id: str, *, timeout: float = 10) -> list[dict[str, Any]]:
    """Lines carrying ``request_id``, waiting a little: an access line is written after the last byte."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in json_lines(service) if line.get("request_id") == request_id]
        if any(line.get("logger", "").endswith(".access") for line in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def cache_counts(client: httpx.Client) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "flashsight_gateway_caption_cache_total"
    }


def cascade(client: httpx.Client, image_url: str, request_id: str) -> dict[str, Any]:
    body = {
        "model": "auto",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": CASCADE_QUESTION},
                ],
            }
        ],
        "max_tokens": 32,
        "temperature": 0,
    }
    response = client.post("/v1/chat/completions", json=body, headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    return response.json()["flashsight"]  # type: ignore[no-any-return]


def test_a_cascade_request_is_followed_by_id_through_all_three_logs_and_its_repeat_hits_the_cache(
    json_logged_stack: Stack,
) -> None:
    stack = json_logged_stack
    stack.ensure_running()
    order_no = str(uuid.uuid4().int)[:16]  # a fresh image: its caption is not cached yet
    image_url = as_data_url(order_screenshot(order_no=order_no))
    first_id, second_id = f"obs-{uuid.uuid4().hex[:12]}", f"obs-{uuid.uuid4().hex[:12]}"

    with httpx.Client(base_url=stack.url, timeout=180) as client:
        before = cache_counts(client)
        first = cascade(client, image_url, first_id)
        second = cascade(client, image_url, second_id)
        after = cache_counts(client)

    assert (first["route"], first["caption_cache"], first["request_id"]) == ("cascade", "miss", first_id)
    assert (second["route"], second["caption_cache"], second["request_id"]) == ("cascade", "hit", second_id)
    assert not first["degraded"] and not second["degraded"]
    # /metrics shows the hit the repeat caused (and the first request's miss)
    assert after["hit"] == before.get("hit", 0) + 1
    assert after["miss"] == before.get("miss", 0) + 1

    # the first request in every service's log, by its id
    gateway_lines = lines_with_id(stack.gateway, first_id)
    vision_lines = lines_with_id(stack.vision, first_id)
    reasoner_lines = lines_with_id(stack.reasoner, first_id)
    (access,) = [line for line in gateway_lines if line["logger"] == "gateway.access"]
    assert access["route"] == "cascade" and access["keyword"] == "为什么" and access["cache"] == "miss"
    assert access["status"] == 200 and access["degraded"] is False and access["latency_ms"] > 0
    assert access["images"] == first["images"]
    assert CASCADE_QUESTION not in json.dumps(gateway_lines, ensure_ascii=False)  # prompts off by default
    for lines, what in ((vision_lines, "vision (the caption)"), (reasoner_lines, "reasoner (the answer)")):
        calls = [line for line in lines if line.get("path") == "/v1/chat/completions"]
        assert len(calls) == 1 and calls[0]["status"] == 200, f"{what}: {lines}"

    # the repeat: the gateway logged it as a hit, and vision was not asked to caption again
    (repeat,) = [
        line for line in lines_with_id(stack.gateway, second_id) if line["logger"] == "gateway.access"
    ]
    assert repeat["cache"] == "hit"
    assert lines_with_id(stack.reasoner, second_id)
    assert not lines_with_id(stack.vision, second_id, timeout=0)

    # every line of every service is a JSON object that names a request id ("-" outside a request)
    for service in (stack.gateway, stack.vision, stack.reasoner):
        for line in json_lines(service):
            assert {"ts", "level", "logger", "request_id", "message"} <= set(line), line
