"""The gateway's /metrics: Prometheus names and labels, what a request records, one registry per app."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from gateway.config import GatewaySettings
from gateway.telemetry.metrics import CIRCUIT_STATES, STAGES, GatewayMetrics
from prometheus_client.parser import text_string_to_metric_families

from devkit.stub_upstream import StubUpstream
from tests.gateway.conftest import chat_body, gateway_client, unique_png

CHAT = "/v1/chat/completions"


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition as {(name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def get_metrics(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return scrape(response.text)


def test_names_types_and_labels_follow_prometheus_conventions() -> None:
    families = {f.name: f for f in text_string_to_metric_families(GatewayMetrics().render().decode())}
    expected = {
        "flashsight_gateway_requests": ("counter", {"endpoint", "route", "status"}),
        "flashsight_gateway_stage_duration_seconds": ("histogram", {"stage"}),
        "flashsight_gateway_time_to_first_token_seconds": ("histogram", {"route"}),
        "flashsight_gateway_caption_cache": ("counter", {"result"}),
        "flashsight_gateway_degraded": ("counter", {"reason"}),
        "flashsight_gateway_circuit_state": ("gauge", {"upstream"}),
        "flashsight_gateway_in_flight": ("gauge", set()),
    }
    for name, (kind, _labels) in expected.items():
        assert name in families, f"{name} missing from {sorted(families)}"
        assert families[name].type == kind
        assert families[name].documentation
    metrics = GatewayMetrics()
    for name, (_kind, labels) in expected.items():
        collector = metrics.registry._names_to_collectors[
            name + ("_total" if expected[name][0] == "counter" else "")
        ]
        assert set(collector._labelnames) == labels, name
    # counters end in _total, durations are in seconds, the cache results exist at 0 from the start
    samples = scrape(metrics.render().decode())
    assert {labels for (n, labels) in samples if n == "flashsight_gateway_caption_cache_total"} == {
        (("result", r),) for r in ("hit", "miss", "unavailable")
    }
    assert STAGES == ("admission", "caption", "vision", "reasoner", "total")
    assert CIRCUIT_STATES == {"closed": 0, "half_open": 1, "open": 2}


async def test_requests_stages_and_the_cache_hit_a_repeat_causes(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    image = unique_png()
    async with gateway_client(make_settings()) as client:
        assert (await client.post(CHAT, json=chat_body("订单号是多少?", image))).status_code == 200
        for _ in range(2):  # the second cascade request finds the caption cached
            answer = await client.post(CHAT, json=chat_body("为什么还没发货?", image))
            assert answer.status_code == 200
        assert answer.json()["flashsight"]["caption_cache"] == "hit"
        assert (await client.post(CHAT, json={"messages": []})).status_code == 400
        samples = await get_metrics(client)

    requests = "flashsight_gateway_requests_total"
    assert value(samples, requests, endpoint=CHAT, route="direct", status="200") == 1
    assert value(samples, requests, endpoint=CHAT, route="cascade", status="200") == 2
    assert value(samples, requests, endpoint=CHAT, route="none", status="400") == 1
    assert value(samples, "flashsight_gateway_caption_cache_total", result="miss") == 1
    assert value(samples, "flashsight_gateway_caption_cache_total", result="hit") == 1
    stage_count = "flashsight_gateway_stage_duration_seconds_count"
    assert value(samples, stage_count, stage="total") == 3
    assert value(samples, stage_count, stage="admission") == 3
    assert value(samples, stage_count, stage="vision") == 1  # direct answer only
    assert value(samples, stage_count, stage="caption") == 2
    assert value(samples, stage_count, stage="reasoner") == 2
    assert value(samples, "flashsight_gateway_circuit_state", upstream="reasoner") == 0
    assert value(samples, "flashsight_gateway_circuit_state", upstream="redis") == 0
    assert value(samples, "flashsight_gateway_in_flight") == 0


async def test_streamed_answers_record_time_to_first_token(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    async with gateway_client(make_settings()) as client:
        response = await client.post(CHAT, json=chat_body("订单号是多少?", unique_png(), stream=True))
        assert response.status_code == 200 and "[DONE]" in response.text
        samples = await get_metrics(client)
    assert value(samples, "flashsight_gateway_time_to_first_token_seconds_count", route="direct") == 1
    assert value(samples, "flashsight_gateway_stage_duration_seconds_count", stage="total") == 1


async def test_degraded_answers_and_the_open_circuit_are_counted(
    make_settings: Callable[..., GatewaySettings], reasoner: StubUpstream
) -> None:
    reasoner.behaviour.mode = "error_500"
    async with gateway_client(
        make_settings(reasoner_failure_threshold=1, reasoner_circuit_open_s=60)
    ) as client:
        answer = await client.post(CHAT, json=chat_body("为什么还没发货?", unique_png()))
        assert answer.json()["flashsight"]["degraded_reason"] == "reasoner_error"
        samples = await get_metrics(client)
    assert value(samples, "flashsight_gateway_degraded_total", reason="reasoner_error") == 1
    assert value(samples, "flashsight_gateway_circuit_state", upstream="reasoner") == CIRCUIT_STATES["open"]


async def test_each_app_counts_its_own_requests(make_settings: Callable[..., GatewaySettings]) -> None:
    async with gateway_client(make_settings()) as first, gateway_client(make_settings()) as second:
        await first.get("/v1/models")
        first_samples = await get_metrics(first)
        second_samples = await get_metrics(second)
    models = {"endpoint": "/v1/models", "route": "none", "status": "200"}
    assert value(first_samples, "flashsight_gateway_requests_total", **models) == 1
    assert value(second_samples, "flashsight_gateway_requests_total", **models) == 0
