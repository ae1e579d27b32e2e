"""The vision service as users run it: ``python -m vision`` on a free port, ocr-lite, real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from flashsight_common.sse import iter_events

from devkit.processes import ServiceProcess
from devkit.screens import as_data_url, order_screenshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vision() -> Iterator[ServiceProcess]:
    with ServiceProcess(module="vision", port_env="VISION_PORT", env={"VISION_BACKEND": "ocr-lite"},
                        name="vision") as service:
        yield service


def order_question(**extra: Any) -> dict[str, Any]:
    image = {"type": "image_url", "image_url": {"url": as_data_url(order_screenshot())}}
    return {"model": "ocr-lite", "messages": [
        {"role": "user", "content": [image, {"type": "text", "text": "订单号是多少?"}]}], **extra}


async def test_answers_the_order_number_and_names_ocr_lite(vision: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=vision.base_url, timeout=60) as client:
        response = await client.post("/v1/chat/completions", json=order_question())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "ocr-lite"
    assert "2024052011223344" in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] > 0


async def test_streams_the_answer_in_several_chunks(vision: ServiceProcess) -> None:
    chunks: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=vision.base_url, timeout=60) as client, client.stream(
        "POST", "/v1/chat/completions", json=order_question(stream=True)
    ) as response:
        assert response.status_code == 200
        chunks = [event async for event in iter_events(response.aiter_lines())]
    texts = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    texts = [text for text in texts if text]
    assert len(texts) >= 2
    assert "2024052011223344" in "".join(texts)
    assert {chunk["model"] for chunk in chunks} == {"ocr-lite"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(("payload", "status", "says"), [
    (lambda body: {**body, "response_format": {"type": "json_schema", "json_schema": {
        "name": "pets", "schema": {"type": "array"}}}}, 400, "object schema"),
    (lambda body: {**body, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
        {"type": "text", "text": "订单号?"}]}]}, 400, "readable image"),
])
async def test_bad_requests_get_a_400_saying_what_is_accepted(
    vision: ServiceProcess, payload: Callable[[dict[str, Any]], dict[str, Any]], status: int, says: str
) -> None:
    async with httpx.AsyncClient(base_url=vision.base_url, timeout=60) as client:
        response = await client.post("/v1/chat/completions", json=payload(order_question()))
    assert response.status_code == status
    assert says in response.json()["error"]["message"]


async def test_json_object_returns_the_fields_on_the_screenshot(vision: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=vision.base_url, timeout=60) as client:
        response = await client.post("/v1/chat/completions",
                                     json=order_question(response_format={"type": "json_object"}))
    assert response.status_code == 200, response.text
    fields = json.loads(response.json()["choices"][0]["message"]["content"])
    assert fields["订单号"] == "2024052011223344"
    assert fields["实付金额"] == "¥1,299.00"
