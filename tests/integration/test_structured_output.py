"""Structured output through the real stack: invoice → JSON, and a JSON Schema the reasoner obeys.

Every service is a real ``python -m`` process (private Redis, ocr-lite vision, SmolLM2
reasoner, gateway). ocr-lite answers ``json_object`` with the key–value fields it read;
the reasoner enforces ``json_schema`` while decoding (xgrammar), so its answer validates.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from devkit.screens import as_data_url, invoice_screenshot
from devkit.stack import Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"invoice_no": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["invoice_no", "amount"],
}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


@pytest.fixture
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=180) as http:
        yield http


def invoice_request(image_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": "Extract the invoice number and the total as JSON."},
                ],
            }
        ],
        "temperature": 0,
        **extra,
    }


def flattened(value: Any) -> str:
    """Every key and value of a JSON document as one string, to look for what the image shows."""
    return json.dumps(value, ensure_ascii=False)


def test_invoice_json_object_through_the_gateway_holds_number_and_amount(gateway: httpx.Client) -> None:
    invoice_no = f"No.{uuid.uuid4().int % 10**8:08d}"  # unique, so no cache answers for us
    image = as_data_url(invoice_screenshot(invoice_no=invoice_no, amount="¥3,217.40"))
    response = gateway.post(
        "/v1/chat/completions",
        json=invoice_request(image, response_format={"type": "json_object"}, route="direct"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    answer = json.loads(body["choices"][0]["message"]["content"])  # it parses
    assert isinstance(answer, dict)
    text = flattened(answer)
    assert invoice_no.removeprefix("No.") in text, text
    assert "3,217.40" in text or "3217.4" in text, text
    assert body["flashsight"]["route"] == "direct"
    assert body["model"] == "ocr-lite"  # the model that really answered


def test_invoice_json_object_streams_parseable_json_too(gateway: httpx.Client) -> None:
    invoice_no = f"No.{uuid.uuid4().int % 10**8:08d}"
    image = as_data_url(invoice_screenshot(invoice_no=invoice_no, amount="¥912.00"))
    payload = invoice_request(image, response_format={"type": "json_object"}, route="direct", stream=True)
    content = ""
    with gateway.stream("POST", "/v1/chat/completions", json=payload) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line.removeprefix("data: "))
                for choice in chunk.get("choices") or ():
                    content += choice["delta"].get("content") or ""
    text = flattened(json.loads(content))
    assert invoice_no.removeprefix("No.") in text and ("912.00" in text or "912" in text), text


def test_reasoner_enforces_a_json_schema_on_the_embedded_model(stack: Stack) -> None:
    payload = {
        "model": "auto",
        "messages": [
            {
                "role": "user",
                "content": "Invoice INV-2024-0042 from ACME Ltd, total due 1,280.50 USD. "
                "Give the invoice number and the amount.",
            }
        ],
        "max_tokens": 96,
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "invoice", "schema": INVOICE_SCHEMA, "strict": True},
        },
    }
    with httpx.Client(base_url=stack.reasoner.base_url, timeout=180) as reasoner:
        response = reasoner.post("/v1/chat/completions", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    answer = json.loads(body["choices"][0]["message"]["content"])
    jsonschema.validate(answer, INVOICE_SCHEMA)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] <= 96


def test_reasoner_refuses_a_schema_it_cannot_enforce_with_a_400(stack: Stack) -> None:
    payload = {
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "bad", "schema": {"type": "object", "minProperties": "two"}},
        },
    }
    with httpx.Client(base_url=stack.reasoner.base_url, timeout=60) as reasoner:
        response = reasoner.post("/v1/chat/completions", json=payload)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "minProperties must be an integer" in error["message"]
    assert error["param"] == "response_format.json_schema.schema"
