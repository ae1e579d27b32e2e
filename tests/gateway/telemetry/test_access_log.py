"""Gateway logs: the request id on every line, one JSON access line per request, no secrets in it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flashsight_common.logs import TEXT_FORMAT, JsonFormatter
from flashsight_common.requestid import RequestIdLogFilter
from gateway.config import GatewaySettings

from tests.gateway.conftest import chat_body, data_url, gateway_client, unique_png

QUESTION = "为什么还没发货? secret-prompt-marker"


@pytest.fixture
def json_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Records of the gateway's loggers as the JSON lines ``GATEWAY_LOG_FORMAT=json`` writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("gateway")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(previous)


async def test_one_json_access_line_per_request_with_what_happened(
    make_settings: Callable[..., GatewaySettings], json_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    image = unique_png()
    async with gateway_client(make_settings()) as client:
        answer = await client.post(
            "/v1/chat/completions", json=chat_body(QUESTION, image), headers={"X-Request-ID": "trace-me-42"}
        )
    meta = answer.json()["flashsight"]
    access = [line for line in json_lines() if line["logger"] == "gateway.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "trace-me-42" and line["level"] == "info"
    assert line["path"] == "/v1/chat/completions" and line["status"] == 200
    assert line["route"] == "cascade" and line["keyword"] == "为什么"
    assert line["images"] == meta["images"] and len(line["images"][0]) == 64  # SHA-256, not bytes
    assert line["cache"] == "miss" and line["degraded"] is False
    assert line["models"] == {"vision": "ocr-lite", "reasoner": "smollm2-135m-instruct"}
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] > 0
    assert "prompt" not in line  # prompts are logged only when enabled
    everything = "\n".join(json.dumps(entry, ensure_ascii=False) for entry in json_lines())
    assert "secret-prompt-marker" not in everything
    assert data_url(image)[30:90] not in everything  # never image bytes


async def test_prompts_are_logged_only_when_enabled(
    make_settings: Callable[..., GatewaySettings], json_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    async with gateway_client(make_settings(log_prompts=True)) as client:
        await client.post(
            "/v1/chat/completions",
            json=chat_body(QUESTION, unique_png()),
            headers={"Authorization": "Bearer sk-never-logged"},
        )
    (line,) = [line for line in json_lines() if line["logger"] == "gateway.access"]
    assert line["prompt"] == QUESTION
    assert "sk-never-logged" not in json.dumps(line)


async def test_every_line_of_a_request_carries_its_id(
    make_settings: Callable[..., GatewaySettings],
    json_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    # the reasoner unreachable: the request service logs a warning inside the request, besides the access line
    async with gateway_client(make_settings(reasoner_url="http://127.0.0.1:1")) as client:
        await client.post("/v1/models", headers={"X-Request-ID": "another-request"})
        await client.post(
            "/v1/chat/completions", json=chat_body(QUESTION, unique_png()), headers={"X-Request-ID": "req-7"}
        )
    lines = [line for line in json_lines() if line["request_id"] == "req-7"]
    assert all(line["request_id"] != "-" for line in json_lines() if line["logger"] == "gateway.access")
    assert {line["logger"] for line in lines} >= {"gateway.access", "gateway.answer.service"}
    access = next(line for line in lines if line["logger"] == "gateway.access")
    assert access["degraded"] == "reasoner_unavailable"


def test_settings_refuse_an_unknown_log_format() -> None:
    with pytest.raises(ValueError, match="log_format"):
        GatewaySettings(log_format="xml")  # type: ignore[arg-type]
    assert GatewaySettings(log_format="JSON").logging.log_format == "json"  # type: ignore[arg-type]


async def test_a_text_access_line_stays_one_line_whatever_the_caller_sends(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("gateway.access")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with gateway_client(make_settings(log_prompts=True)) as client:
            await client.get("/nothing%0a2099-01-01 INFO gateway.access forged")
            await client.post(
                "/v1/chat/completions", json=chat_body("订单号?\nforged line\u2028too", unique_png())
            )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert "/nothing\\n2099-01-01" in lines[0]
    assert "订单号?\\nforged line\\u2028too" in lines[1]
