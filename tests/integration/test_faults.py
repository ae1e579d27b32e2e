"""Faults through real processes: the reasoner, vision and Redis killed under load; keys and rate limits
across two gateway replicas; slow clients.

Upstreams are OpenAI stub processes (killed with SIGKILL: a crash, as the gateway sees it),
Redis a private server on a free port (never the shared one).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway_procs import RedisProcess, gateway_process, stub_process

pytestmark = pytest.mark.integration

LONG_ANSWER = " ".join(f"word{i}" for i in range(40))  # 40 pieces x 100 ms: a 4 s stream
TEXT_ONLY = [{"role": "user", "content": "why is the sky blue? answer in detail"}]


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


async def _stream(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """Read one SSE answer; its status, text, last flashsight object and whether it ended cleanly."""
    text, meta, done, errors = "", None, False, []
    async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp:
        if resp.status_code != 200:
            return {"status": resp.status_code, "body": (await resp.aread()).decode()}
        async for line in resp.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                errors.append(chunk["error"])
            for choice in chunk.get("choices", []):
                text += (choice.get("delta") or {}).get("content") or ""
            meta = chunk.get("flashsight", meta)
    return {"status": 200, "text": text, "meta": meta, "done": done, "errors": errors}


async def test_reasoner_killed_under_16_streams_degrades_every_affected_one_and_recovers(
    redis: RedisProcess,
) -> None:
    with (
        stub_process("ocr-lite", answer="vision answer") as vision,
        stub_process("stub-reasoner", answer=LONG_ANSWER, piece_delay_ms=100) as reasoner,
        gateway_process(vision=vision, reasoner=reasoner, redis=redis) as gateway,
    ):
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as client:
            streams = [asyncio.create_task(_stream(client, {"messages": TEXT_ONLY})) for _ in range(16)]
            await asyncio.sleep(1.0)  # every stream is past its first token now
            reasoner.kill()
            results = await asyncio.gather(*streams)

            assert [r["status"] for r in results] == [200] * 16
            assert all(r["done"] and not r["errors"] for r in results), "a stream failed instead of degrading"
            for r in results:
                assert r["meta"]["degraded"] is True
                assert r["meta"]["degraded_reason"] == "reasoner_failed_mid_stream"
                assert "image description only" in r["text"]

            # While it is down: answers still flow, from vision, flagged.
            down = (await client.post("/v1/chat/completions", json={"messages": TEXT_ONLY})).json()
            assert down["flashsight"]["degraded"] is True
            assert down["flashsight"]["degraded_reason"].startswith("reasoner_")
            assert down["flashsight"]["models"]["vision"] == "ocr-lite"

            reasoner.start()
            restarted = time.monotonic()
            while True:
                answer = (await client.post("/v1/chat/completions", json={"messages": TEXT_ONLY})).json()
                if not answer["flashsight"]["degraded"]:
                    break
                assert time.monotonic() - restarted < 10, "cascade answers did not return within 10 s"
                await asyncio.sleep(0.25)
            assert answer["flashsight"]["models"]["reasoner"] == "stub-reasoner"
            print(f"cascade answers back {time.monotonic() - restarted:.1f}s after the reasoner restarted")


async def test_vision_killed_is_a_503_with_retry_after_and_recovers(redis: RedisProcess) -> None:
    image_question = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what does it say?"},
                {"type": "image_url", "image_url": {"url": _PNG_URL}},
            ],
        }
    ]
    with (
        stub_process("ocr-lite") as vision,
        stub_process("stub-reasoner") as reasoner,
        gateway_process(
            vision=vision, reasoner=reasoner, redis=redis, env={"GATEWAY_VISION_CIRCUIT_OPEN_S": "1"}
        ) as gateway,
    ):
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
            assert (
                await client.post("/v1/chat/completions", json={"messages": image_question})
            ).status_code == 200
            vision.kill()
            statuses = []
            for _ in range(8):  # enough to open vision's circuit (threshold 5)
                resp = await client.post("/v1/chat/completions", json={"messages": image_question})
                statuses.append(resp.status_code)
                assert resp.status_code == 503, resp.text
                assert int(resp.headers["Retry-After"]) >= 1
                assert "vision" in resp.json()["error"]["message"]
            last = resp.json()["error"]
            assert last["code"] == "upstream_circuit_open", last
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["vision"]["circuit"] == "open"

            vision.start()
            restarted = time.monotonic()
            while (
                await client.post("/v1/chat/completions", json={"messages": image_question})
            ).status_code != 200:
                assert time.monotonic() - restarted < 10, "vision answers did not return"
                await asyncio.sleep(0.25)
            assert (await client.get("/readyz")).json()["vision"]["circuit"] == "closed"


async def test_redis_killed_answers_still_flow(redis: RedisProcess) -> None:
    keyword_question = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "why is this order late?"},
                {"type": "image_url", "image_url": {"url": _PNG_URL}},
            ],
        }
    ]
    env = {"GATEWAY_RATE_LIMIT_PER_MINUTE": "1000", "GATEWAY_REDIS_RETRY_AFTER_S": "1"}
    with (
        stub_process("ocr-lite") as vision,
        stub_process("stub-reasoner") as reasoner,
        gateway_process(vision=vision, reasoner=reasoner, redis=redis, env=env) as gateway,
    ):
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
            first = await client.post("/v1/chat/completions", json={"messages": keyword_question})
            assert first.status_code == 200 and "x-ratelimit-remaining-requests" in first.headers
            redis.kill()
            results = await asyncio.gather(
                *(_stream(client, {"messages": keyword_question}) for _ in range(8)),
                *(client.post("/v1/chat/completions", json={"messages": keyword_question}) for _ in range(8)),
            )
            for r in results[:8]:
                assert r["status"] == 200 and r["done"] and not r["errors"], r
            for resp in results[8:]:
                assert resp.status_code == 200, resp.text
                assert resp.json()["flashsight"]["caption_cache"] == "unavailable"
                assert "x-ratelimit-remaining-requests" not in resp.headers  # failed open, unlimited
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["redis"]["ok"] is False
        assert "redis unavailable" in gateway.log_tail(200)


def test_two_replicas_share_one_limit_exactly(redis: RedisProcess) -> None:
    limit, sent = 5, 14
    env = {"GATEWAY_API_KEYS": "key-alpha,key-beta", "GATEWAY_RATE_LIMIT_PER_MINUTE": str(limit)}
    with (
        stub_process("ocr-lite") as vision,
        stub_process("stub-reasoner") as reasoner,
        gateway_process(vision=vision, reasoner=reasoner, redis=redis, env=env) as one,
        gateway_process(vision=vision, reasoner=reasoner, redis=redis, env=env) as two,
    ):

        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30, headers={"Authorization": "Bearer key-alpha"}) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            f"{(one, two)[i % 2].base_url}/v1/chat/completions", json={"messages": TEXT_ONLY}
                        )
                        for i in range(sent)
                    )
                )

        responses = asyncio.run(fire())
        ok = [r for r in responses if r.status_code == 200]
        limited = [r for r in responses if r.status_code == 429]
        assert len(ok) == limit and len(limited) == sent - limit
        for r in limited:
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            assert "rate limit" in r.json()["error"]["message"]
            assert 1 <= int(r.headers["Retry-After"]) <= 60
            assert r.headers["x-ratelimit-limit-requests"] == str(limit)
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
            assert r.headers["x-ratelimit-reset-requests"].endswith("s")
        # remaining is read just after the hit, so concurrent hits on the other replica may already show
        assert all(0 <= int(r.headers["x-ratelimit-remaining-requests"]) < limit for r in ok)

        with httpx.Client(timeout=10) as client:
            other = client.post(
                f"{one.base_url}/v1/chat/completions",
                json={"messages": TEXT_ONLY},
                headers={"Authorization": "Bearer key-beta"},
            )
            assert other.status_code == 200  # another key has its own window
            wrong = client.post(
                f"{two.base_url}/v1/chat/completions",
                json={"messages": TEXT_ONLY},
                headers={"Authorization": "Bearer key-gamma"},
            )
            assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
            missing = client.post(f"{two.base_url}/v1/chat/completions", json={"messages": TEXT_ONLY})
            assert missing.status_code == 401 and "API key" in missing.json()["error"]["message"]
            for path in ("/healthz", "/readyz"):
                assert client.get(f"{one.base_url}{path}").status_code == 200, path  # exempt from keys
            # /metrics shows per-endpoint counts and circuit states: key holders only (GATEWAY_OPS_PUBLIC)
            assert client.get(f"{one.base_url}/metrics").status_code == 401
            keyed = client.get(f"{one.base_url}/metrics", headers={"Authorization": "Bearer key-alpha"})
            assert keyed.status_code == 200
        assert "NO API KEYS" not in one.log_tail(100)


def test_slowloris_clients_do_not_stop_a_normal_request(redis: RedisProcess) -> None:
    with (
        stub_process("ocr-lite") as vision,
        stub_process("stub-reasoner") as reasoner,
        gateway_process(vision=vision, reasoner=reasoner, redis=redis) as gateway,
    ):
        slow = []
        for _ in range(64):
            sock = socket.create_connection((gateway.host, gateway.port), timeout=5)
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        try:
            for byte in b"X-Slow: aaaa":  # byte by byte, interleaved with a normal request
                for sock in slow:
                    sock.sendall(bytes([byte]))
                started = time.monotonic()
                resp = httpx.post(
                    f"{gateway.base_url}/v1/chat/completions", json={"messages": TEXT_ONLY}, timeout=10
                )
                assert resp.status_code == 200
                assert time.monotonic() - started < 1.0, "a normal request waited behind slow clients"
            # A client that trickles headers past the size cap is cut off, not buffered forever.
            hog = socket.create_connection((gateway.host, gateway.port), timeout=5)
            hog.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000)
            answer = hog.recv(100)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer
            hog.close()
        finally:
            for sock in slow:
                sock.close()
        assert httpx.get(f"{gateway.base_url}/healthz", timeout=5).status_code == 200


def _png_url() -> str:
    import base64
    import io

    from PIL import Image, ImageDraw

    im = Image.new("RGB", (200, 60), "white")
    ImageDraw.Draw(im).text((10, 20), "ORDER 12345", fill="black")
    out = io.BytesIO()
    im.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


_PNG_URL = _png_url()
