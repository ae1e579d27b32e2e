"""Load shedding end to end: a real ``python -m gateway`` in front of stub upstream processes.

Thresholds are set low through the environment (above 1 in flight: max_tokens capped at 7;
above 2: greedy; above 3: the holding reply), and slow streams hold the in-flight count
at a known level while the next request goes in. A stream's response headers arrive only
once the gateway has counted it and primed its upstream, so "headers received" means
"counted": no sleeps decide the levels.

What is checked: what the upstream received (the cost cuts), what the caller got (steps,
degraded, the holding reply plain and streamed, never a 5xx), and that every request,
including a client that hangs up mid-stream, leaves the count where it found it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from devkit.processes import ServiceProcess
from tests.support.gateway_procs import RedisProcess, gateway_process, stub_process

pytestmark = pytest.mark.integration

HOLDING = "busy right now: please retry"
SLOW_ANSWER = " ".join(f"word{i}" for i in range(30))  # 30 pieces x 100 ms: a 3 s stream
SHED_ENV = {
    "GATEWAY_SHED_MAX_TOKENS_ABOVE": "1",
    "GATEWAY_SHED_MAX_TOKENS": "7",
    "GATEWAY_SHED_GREEDY_ABOVE": "2",
    "GATEWAY_SHED_HOLD_ABOVE": "3",
    "GATEWAY_HOLDING_REPLY": HOLDING,
}
CAPPED = ["overload_max_tokens"]
GREEDY = ["overload_max_tokens", "overload_greedy"]
HELD = ["overload_max_tokens", "overload_greedy", "overload_holding_reply"]


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    with server:  # (``as`` would type it as the base ServiceProcess)
        yield server


def _body(marker: str, *, stream: bool = False) -> dict[str, Any]:
    """A text-only (reasoner) request that asks for more than the shed ceiling, sampled."""
    return {
        "messages": [{"role": "user", "content": f"why is the sky blue? [{marker}]"}],
        "max_tokens": 500,
        "temperature": 0.9,
        "top_p": 0.8,
        "stream": stream,
    }


async def _read_sse(resp: httpx.Response) -> dict[str, Any]:
    text, meta, done = "", None, False
    async for line in resp.aiter_lines():
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            continue
        chunk = json.loads(line[6:])
        assert "error" not in chunk, chunk
        for choice in chunk.get("choices", []):
            text += (choice.get("delta") or {}).get("content") or ""
        meta = chunk.get("flashsight", meta)
    return {"status": resp.status_code, "text": text, "meta": meta, "done": done}


async def _open_stream(
    client: httpx.AsyncClient, stack: AsyncExitStack, body: dict[str, Any]
) -> tuple[httpx.Response, asyncio.Task[dict[str, Any]]]:
    """POST a stream; returns once its headers are in (the gateway has counted it), reading on."""
    resp = await stack.enter_async_context(client.stream("POST", "/v1/chat/completions", json=body))
    assert resp.status_code == 200, (await resp.aread()).decode()
    return resp, asyncio.create_task(_read_sse(resp))


async def _in_flight(client: httpx.AsyncClient) -> float:
    metrics = (await client.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("flashsight_gateway_in_flight "))
    return float(line.split()[1])


async def _settles_at_zero(client: httpx.AsyncClient, *, within_s: float = 10.0) -> None:
    """The in-flight gauge reads 0 again, and a new request is shed by nothing.

    The gauge counts every API request (the access middleware); the shedder keeps its own
    count, which /metrics does not show. With the first threshold at 1, a probe answered
    without any step proves the shedder's count was back to 0 too.
    """
    deadline = time.monotonic() + within_s
    while (value := await _in_flight(client)) != 0:
        assert time.monotonic() < deadline, f"flashsight_gateway_in_flight stuck at {value}"
        await asyncio.sleep(0.1)
    probe = await client.post("/v1/chat/completions", json=_body(f"probe-{uuid.uuid4().hex[:6]}"))
    assert probe.status_code == 200, probe.text
    assert probe.json()["flashsight"]["load_shedding"] == []
    assert probe.json()["flashsight"]["degraded"] is False


def _received(stubs: list[ServiceProcess], marker: str) -> list[dict[str, Any]]:
    """The chat bodies any upstream got for the request tagged ``marker``."""
    found = []
    for stub in stubs:
        for body in httpx.get(stub.base_url + "/_stub/requests", timeout=5).json():
            if any(f"[{marker}]" in json.dumps(m, ensure_ascii=False) for m in body["messages"]):
                found.append(body)
    return found


def _assert_shed(meta: dict[str, Any], steps: list[str]) -> None:
    assert meta["load_shedding"] == steps
    assert meta["degraded"] is (bool(steps))
    assert meta["degraded_reason"] == (steps[-1] if steps else None)


async def test_each_threshold_sheds_one_more_step_and_the_count_returns_to_zero(redis: RedisProcess) -> None:
    with (
        stub_process("ocr-lite", record=True) as vision,
        stub_process("stub-reasoner", answer=SLOW_ANSWER, piece_delay_ms=100, record=True) as reasoner,
        gateway_process(vision=vision, reasoner=reasoner, redis=redis, env=SHED_ENV) as gateway,
    ):
        stubs = [vision, reasoner]
        async with (
            httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client,
            AsyncExitStack() as stack,
        ):
            plain: dict[str, httpx.Response] = {}
            streams: dict[str, asyncio.Task[dict[str, Any]]] = {}

            # 1 in flight: nothing shed.
            s1, streams["s1"] = await _open_stream(client, stack, _body("s1", stream=True))
            assert s1.headers["X-FlashSight-Degraded"] == "false"
            plain["p2"] = await client.post("/v1/chat/completions", json=_body("p2"))  # 2: capped
            s2, streams["s2"] = await _open_stream(client, stack, _body("s2", stream=True))  # 2: capped
            assert s2.headers["X-FlashSight-Degraded"] == "overload_max_tokens"
            plain["p3"] = await client.post("/v1/chat/completions", json=_body("p3"))  # 3: + greedy
            _, streams["s3"] = await _open_stream(client, stack, _body("s3", stream=True))  # 3: + greedy
            plain["p4"] = await client.post("/v1/chat/completions", json=_body("p4"))  # 4: holding reply
            s4, streams["s4"] = await _open_stream(client, stack, _body("s4", stream=True))  # 4: holding
            # Held, yet still routed without touching images, and a bad model still refused.
            unknown = await client.post("/v1/chat/completions", json={**_body("p5"), "model": "nope"})
            assert unknown.status_code == 404, unknown.text
            assert s4.headers["X-FlashSight-Degraded"] == "overload_holding_reply"
            done = {name: await task for name, task in streams.items()}

        # The caller: 200s, every step listed and flagged, the holding reply where held.
        assert {name: r.status_code for name, r in plain.items()} == dict.fromkeys(plain, 200)
        assert all(r["status"] == 200 and r["done"] for r in done.values())
        expected = {"s1": [], "p2": CAPPED, "s2": CAPPED, "p3": GREEDY, "s3": GREEDY, "p4": HELD, "s4": HELD}
        got = {n: r.json()["flashsight"] for n, r in plain.items()} | {n: r["meta"] for n, r in done.items()}
        for name, steps in expected.items():
            _assert_shed(got[name], steps)
        assert plain["p4"].json()["choices"][0]["message"]["content"] == HOLDING
        assert (got["p4"]["route"], got["p4"]["route_reason"]) == ("cascade", "no_image")
        assert done["s4"]["text"] == HOLDING
        # Shed answers are the reasoner's own: no "image description only" notice (vision did not stand in).
        assert [done[n]["text"] for n in ("s1", "s2", "s3")] == [SLOW_ANSWER] * 3
        assert "notice" not in got["p3"] or got["p3"]["notice"] is None

        # The upstream: the caller's sampling untouched at 1, then capped, then greedy; held ones never sent.
        for name in ("s1", "p2", "s2", "p3", "s3"):
            assert len(_received(stubs, name)) == 1, name
        s1_sent = _received(stubs, "s1")[0]
        assert (s1_sent["max_tokens"], s1_sent["temperature"], s1_sent["top_p"]) == (500, 0.9, 0.8)
        for name in ("p2", "s2"):
            sent = _received(stubs, name)[0]
            assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (7, 0.9, 0.8), name
        for name in ("p3", "s3"):
            sent = _received(stubs, name)[0]
            assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (7, 0.0, 1.0), name
        assert _received(stubs, "p4") == [] and _received(stubs, "s4") == []

        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
            await _settles_at_zero(client)


async def test_a_client_hanging_up_mid_stream_leaves_the_count(redis: RedisProcess) -> None:
    with (
        stub_process("ocr-lite") as vision,
        stub_process("stub-reasoner", answer=SLOW_ANSWER, piece_delay_ms=100) as reasoner,
        gateway_process(vision=vision, reasoner=reasoner, redis=redis, env=SHED_ENV) as gateway,
    ):
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
            for _ in range(3):  # a leak of one per hang-up would shed the probe
                async with client.stream(
                    "POST", "/v1/chat/completions", json=_body("gone", stream=True)
                ) as resp:
                    assert resp.status_code == 200
                    async for line in resp.aiter_lines():
                        if '"content":"word' in line.replace(" ", ""):
                            break  # one real token in, then hang up (the stream has ~3 s to go)
            await _settles_at_zero(client)
