from __future__ import annotations

from collections.abc import Callable

import httpx
from gateway.config import GatewaySettings

from devkit.stub_upstream import StubUpstream
from tests.gateway.conftest import DEAD_REDIS_URL, gateway_client


async def test_models_lists_the_served_ids(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/models")
    assert [m["id"] for m in resp.json()["data"]] == ["auto", "direct", "cascade", "glm-4.6v-flash-web"]


async def test_healthz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_readyz_ready(client: httpx.AsyncClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready" and body["redis"]["ok"] is True
    assert body["vision"]["ready"] and body["reasoner"]["ready"]


async def test_readyz_reasoner_not_ready_is_200_degraded(
    client: httpx.AsyncClient, reasoner: StubUpstream
) -> None:
    # Every request is still answered (cascade degrades to vision): stay in rotation.
    reasoner.behaviour.mode = "not_ready"
    resp = await client.get("/readyz")
    assert resp.status_code == 200 and resp.json()["status"] == "degraded"
    assert resp.json()["reasoner"]["status"] == 503 and "vision alone" in resp.json()["reasoner"]["impact"]


async def test_readyz_vision_down_is_503(client: httpx.AsyncClient, vision: StubUpstream) -> None:
    await vision.stop()
    resp = await client.get("/readyz")
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert resp.json()["status"] == "not_ready" and resp.json()["vision"]["ready"] is False


async def test_readyz_redis_down_is_200_degraded(make_settings: Callable[..., GatewaySettings]) -> None:
    async with gateway_client(make_settings(redis_url=DEAD_REDIS_URL)) as client:
        resp = await client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "degraded" and resp.json()["redis"]["ok"] is False


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    assert len((await client.get("/healthz")).headers["X-Request-ID"]) == 32
    assert (await client.get("/healthz", headers={"X-Request-ID": "abc"})).headers["X-Request-ID"] == "abc"
