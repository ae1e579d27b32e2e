"""The exact answer cache through real processes: the gateway, OpenAI stub upstreams, real Redis.

Redis is the shared local server (``GATEWAY_TEST_REDIS_URL``, DB 14 by default); every test
uses fresh API keys, so its cache scope (and so every key it writes) is its own and a rerun
never finds an old entry. The stubs record the bodies they receive: a hit is proven by the
upstream *not* being called again, not only by ``flashsight.answer_cache``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest

from devkit.processes import ServiceProcess
from tests.support.gateway_procs import RedisProcess, gateway_process, stub_process

pytestmark = pytest.mark.integration

SHARED_REDIS_URL = os.environ.get("GATEWAY_TEST_ANSWER_CACHE_REDIS_URL", "redis://127.0.0.1:6379/14")
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
ANSWER = "the parcel waits for payment"
QUESTION = [{"role": "user", "content": "why has my order not shipped? answer briefly"}]


@dataclass(frozen=True)
class _Redis:
    url: str


@dataclass
class Stack:
    gateway: ServiceProcess
    reasoner: ServiceProcess
    keys: tuple[str, str]

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.keys[0]}"}
        return httpx.Client(base_url=self.gateway.base_url, headers=headers, timeout=30)

    def reasoner_calls(self) -> int:
        return len(httpx.get(self.reasoner.base_url + "/_stub/requests", timeout=5).json())


def _stack(redis_url: str, reasoner_answer: str = ANSWER) -> Iterator[Stack]:
    keys = (f"sk-a-{uuid.uuid4().hex}", f"sk-b-{uuid.uuid4().hex}")
    with (
        stub_process("ocr-lite", answer="vision answer", record=True) as vision,
        stub_process("stub-reasoner", answer=reasoner_answer, record=True) as reasoner,
        gateway_process(
            vision=vision,
            reasoner=reasoner,
            redis=cast(RedisProcess, _Redis(redis_url)),
            env={
                "GATEWAY_REDIS_URL": redis_url,
                "GATEWAY_API_KEYS": ",".join(keys),
                "GATEWAY_ANSWER_CACHE": "true",
                "GATEWAY_ANSWER_CACHE_TTL_S": "120",
            },
        ) as gateway,
    ):
        yield Stack(gateway, reasoner, keys)


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield from _stack(SHARED_REDIS_URL)


def _ask(client: httpx.Client, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    resp = client.post(
        "/v1/chat/completions", json={"messages": QUESTION, "temperature": 0, **fields}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert resp.headers["X-FlashSight-Answer-Cache"] == body["flashsight"]["answer_cache"]
    return body


def _ask_streamed(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"messages": QUESTION, "temperature": 0, "stream": True, **fields}
    chunks = []
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    finish = [c["choices"][0].get("finish_reason") for c in chunks if c.get("choices")][-1]
    return {"text": text, "chunks": chunks, "meta": chunks[-1]["flashsight"], "finish": finish}


def test_a_repeated_deterministic_question_is_a_hit_plain_and_streamed(stack: Stack) -> None:
    with stack.client() as client:
        first = _ask(client)
        assert first["flashsight"]["answer_cache"] == "miss"
        assert stack.reasoner_calls() == 1

        second = _ask(client)
        assert second["flashsight"]["answer_cache"] == "hit"
        assert stack.reasoner_calls() == 1, "a hit called the reasoner"
        assert second["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
        assert second["choices"][0]["finish_reason"] == "stop"
        assert second["model"] == first["model"] == "stub-reasoner"
        assert second["id"] != first["id"]
        assert second["flashsight"]["models"]["reasoner"] == "stub-reasoner"

        # The same question streamed replays the stored answer as SSE (stream is not in the key).
        replay = _ask_streamed(client)
        assert replay["meta"]["answer_cache"] == "hit"
        assert replay["text"] == first["choices"][0]["message"]["content"]
        assert replay["finish"] == "stop"
        assert {c["model"] for c in replay["chunks"]} == {"stub-reasoner"}
        assert len({c["id"] for c in replay["chunks"]}) == 1
        assert stack.reasoner_calls() == 1

        # A streamed miss is stored once the stream ended, then hits plain.
        streamed = _ask_streamed(client, seed=11, temperature=0.7)
        assert streamed["meta"]["answer_cache"] == "miss"
        assert stack.reasoner_calls() == 2
        again = _ask(client, seed=11, temperature=0.7)
        assert again["flashsight"]["answer_cache"] == "hit"
        assert again["choices"][0]["message"]["content"] == streamed["text"]
        assert stack.reasoner_calls() == 2

        # Any sampling field changes the question.
        assert _ask(client, max_tokens=7)["flashsight"]["answer_cache"] == "miss"

        # With keys set, /metrics needs one (docs/security.md).
        key = {"Authorization": f"Bearer {stack.keys[0]}"}
        metrics = httpx.get(stack.gateway.base_url + "/metrics", headers=key, timeout=5).text
        assert 'flashsight_gateway_answer_cache_total{result="hit"} 3.0' in metrics
        assert 'flashsight_gateway_answer_cache_total{result="miss"} 3.0' in metrics


def test_another_api_key_never_sees_the_answer(stack: Stack) -> None:
    with stack.client(stack.keys[0]) as a, stack.client(stack.keys[1]) as b:
        assert _ask(a)["flashsight"]["answer_cache"] == "miss"
        assert _ask(a)["flashsight"]["answer_cache"] == "hit"
        assert _ask(b)["flashsight"]["answer_cache"] == "miss"
        assert stack.reasoner_calls() == 2


def test_cache_control_and_non_deterministic_requests(stack: Stack) -> None:
    with stack.client() as client:
        # no-store: looked up (miss), not written.
        assert _ask(client, headers={"Cache-Control": "no-store"})["flashsight"]["answer_cache"] == "miss"
        assert _ask(client, headers={"Cache-Control": "no-store"})["flashsight"]["answer_cache"] == "miss"
        assert stack.reasoner_calls() == 2
        # no-cache: not looked up (bypass), but written: the next plain request hits.
        assert _ask(client, headers={"Cache-Control": "no-cache"})["flashsight"]["answer_cache"] == "bypass"
        assert stack.reasoner_calls() == 3
        assert _ask(client)["flashsight"]["answer_cache"] == "hit"
        assert _ask(client, headers={"Cache-Control": "no-cache"})["flashsight"]["answer_cache"] == "bypass"
        assert stack.reasoner_calls() == 4
        # temperature 0.7 without a seed: never cached.
        for _ in range(2):
            assert _ask(client, temperature=0.7)["flashsight"]["answer_cache"] == "bypass"
        assert stack.reasoner_calls() == 6


def test_redis_down_is_unavailable_and_still_answers() -> None:
    for stack in _stack(DEAD_REDIS_URL):
        with stack.client() as client:
            for _ in range(2):
                body = _ask(client)
                assert body["flashsight"]["answer_cache"] == "unavailable"
                assert body["choices"][0]["message"]["content"]
            assert _ask_streamed(client)["meta"]["answer_cache"] == "unavailable"
            assert stack.reasoner_calls() == 3


def test_a_degraded_answer_is_never_stored() -> None:
    for stack in _stack(SHARED_REDIS_URL):
        stack.reasoner.kill()  # cascade answers now come from vision alone, marked degraded
        with stack.client() as client:
            for _ in range(2):
                body = _ask(client)
                assert body["flashsight"]["degraded"] is True
                assert body["flashsight"]["answer_cache"] == "miss"
            streamed = _ask_streamed(client)
            assert streamed["meta"]["degraded"] is True
            assert streamed["meta"]["answer_cache"] == "miss"
            assert _ask(client)["flashsight"]["answer_cache"] == "miss"
