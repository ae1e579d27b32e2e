"""gateway.api.auth_middleware: the door refuses before any body is read, in the OpenAI error shape."""

from __future__ import annotations

from collections.abc import Callable

from gateway.api.auth_middleware import is_exempt
from gateway.config import GatewaySettings

from tests.gateway.conftest import chat_body, gateway_client


def test_probes_and_the_page_need_no_key() -> None:
    assert all(is_exempt(p) for p in ("/", "/healthz", "/readyz", "/metrics", "/static/app.js"))
    assert not any(is_exempt(p) for p in ("/v1/chat/completions", "/v1/models", "/infer"))


async def test_a_missing_key_is_a_401_with_www_authenticate_and_probes_pass(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    async with gateway_client(make_settings(api_keys=("k-1",))) as client:
        refused = await client.post("/v1/chat/completions", json=chat_body("hi"))
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert (await client.get("/healthz")).status_code == 200
        allowed = await client.get("/v1/models", headers={"Authorization": "Bearer k-1"})
        assert allowed.status_code == 200


async def test_a_rate_limited_caller_gets_429_and_every_answer_carries_the_limit_headers(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    key = f"rl-{id(object())}"
    async with gateway_client(make_settings(api_keys=(key,), rate_limit_per_minute=1)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        first = await client.get("/v1/models", headers=headers)
        second = await client.get("/v1/models", headers=headers)
    assert first.status_code == 200 and first.headers["x-ratelimit-limit-requests"] == "1"
    assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(second.headers["Retry-After"]) >= 1 and second.headers["x-ratelimit-remaining-requests"] == "0"
