"""Every refusal is an OpenAI-shaped error with the right status, saying what was wrong."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gateway.answer.service import AnswerService
from gateway.config import GatewaySettings

from .conftest import chat_body, gateway_client, unique_png


def assert_error(
    resp: httpx.Response, status: int, code: str | None = None, says: str = ""
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code
    assert says in error["message"]
    return error


async def post_raw(client: httpx.AsyncClient, content: bytes, **headers: str) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions", content=content, headers={"Content-Type": "application/json", **headers}
    )


async def test_broken_json(client: httpx.AsyncClient) -> None:
    assert_error(await post_raw(client, b'{"messages": ['), 400, "invalid_json", "could not be parsed")


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"messages": []}, "messages", "at least 1"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", "'system'"),
        (
            {"messages": [{"role": "user", "content": [{"type": "audio", "audio": "x"}]}]},
            "messages.0.content",
            "supported types: 'text', 'image_url'",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, None, "only n=1"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 5}, "temperature", "2"),
        ({"messages": [{"role": "user", "content": "x"}], "route": "fast"}, "route", "'direct'"),
    ],
)
async def test_invalid_fields_are_400_naming_the_field(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    param: str | None,
    says: str,
) -> None:
    error = assert_error(await client.post("/v1/chat/completions", json=body), 400, "invalid_value", says)
    if param is not None:
        assert error["param"] == param


async def test_unknown_model_is_404_listing_the_models(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={**chat_body("hi"), "model": "gpt-4o"})
    assert_error(resp, 404, "model_not_found", "available models: auto, direct, cascade, glm-4.6v-flash-web")


async def test_body_too_large_is_413(make_settings: Callable[..., GatewaySettings]) -> None:
    async with gateway_client(make_settings(max_body_bytes=4096, max_image_bytes=2048)) as client:
        assert_error(await post_raw(client, b" " * 5000), 413, "payload_too_large", "at most 4096 bytes")


@pytest.mark.parametrize(
    ("url", "code", "says"),
    [
        ("data:image/png;base64,!!!notbase64", "invalid_image", "base64"),
        (
            "data:image/svg+xml;base64," + base64.b64encode(b"<svg/>").decode(),
            "unsupported_image_format",
            "accepted",
        ),
        (
            "data:image/png;base64," + base64.b64encode(b"GIF89a" + b"\0" * 20).decode(),
            "invalid_image",
            "GIF",
        ),
        ("ftp://example.com/a.png", "invalid_image_url", "https://"),
    ],
)
async def test_bad_images_are_400_with_their_code(
    client: httpx.AsyncClient, url: str, code: str, says: str
) -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": "what?"},
                ],
            }
        ]
    }
    error = assert_error(await client.post("/v1/chat/completions", json=body), 400, code, says)
    assert error["param"] == "messages.0.content.0.image_url"


async def test_image_too_large_is_refused(make_settings: Callable[..., GatewaySettings]) -> None:
    async with gateway_client(make_settings(max_image_bytes=2048)) as client:
        big = unique_png((400, 400))
        resp = await client.post("/v1/chat/completions", json=chat_body("what?", big + b"\0" * 4096))
        assert_error(resp, 400, "image_too_large", "limit")


async def test_too_many_images(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", json=chat_body("what?", *[unique_png() for _ in range(5)])
    )
    assert_error(resp, 400, "too_many_images", "at most 4")


@pytest.mark.parametrize(
    "url",
    ["https://169.254.169.254/latest/meta-data/x.png", "http://example.com/a.png", "https://127.0.0.1/a.png"],
)
async def test_blocked_image_urls_are_400(client: httpx.AsyncClient, url: str) -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    error = assert_error(await client.post("/v1/chat/completions", json=body), 400)
    assert error["message"].startswith("image URL refused")


async def test_unknown_path_and_method(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v2/nothing"), 404, None, "no route /v2/nothing")
    assert_error(await client.get("/v1/chat/completions"), 405, None, "not allowed")


async def test_a_bug_is_a_500_in_the_same_shape(
    make_settings: Callable[..., GatewaySettings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(AnswerService, "_admit", broken)
    async with gateway_client(make_settings(), raise_app_exceptions=False) as client:
        resp = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"X-Request-ID": "bug-500-test"}
        )
    assert_error(resp, 500, "internal_error", "internal error (RuntimeError)")
    assert "boom" not in resp.json()["error"]["message"]
    assert "bug-500-test" in resp.json()["error"]["message"]  # the id finds the log lines
