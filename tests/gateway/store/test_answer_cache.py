"""The answer cache's key recipe (pure) and its Redis entries (the real test Redis, own prefix)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gateway.images.normalise import NormalisedImage
from gateway.schemas import GatewayChatRequest
from gateway.store.answer_cache import (
    NON_SEMANTIC_FIELDS,
    OPEN_SCOPE,
    AnswerCache,
    CachedAnswer,
    cache_directives,
    is_deterministic,
    storable,
)
from gateway.store.redis_guard import RedisGuard, build_redis
from redis.asyncio import Redis

from tests.gateway.conftest import DEAD_REDIS_URL, REDIS_TEST_URL

SCOPE_A = "key:aaaaaaaaaaaaaaaa"
SCOPE_B = "key:bbbbbbbbbbbbbbbb"


def image(sha: str) -> NormalisedImage:
    return NormalisedImage(data=b"x", mime="image/png", sha256=sha, width=1, height=1, source_format="PNG")


def request(**fields: Any) -> GatewayChatRequest:
    body = {"messages": [{"role": "user", "content": "why?"}], "temperature": 0, **fields}
    return GatewayChatRequest.model_validate(body)


def cache(enabled: bool = True) -> AnswerCache:
    return AnswerCache(
        RedisGuard(build_redis(DEAD_REDIS_URL, timeout_s=0.1), retry_after_s=5), enabled=enabled, ttl_s=60
    )


def key_of(
    req: GatewayChatRequest,
    *,
    scope: str = SCOPE_A,
    images: list[NormalisedImage] | None = None,
    route: str = "cascade",
) -> str:
    c = cache()
    plan = c.plan(req, scope=scope, cache_control=None)
    assert plan.lookup, "a deterministic request is looked up"
    return c.key(plan, req, images or [], route)


SAMPLING_CHANGES: dict[str, Any] = {
    "temperature": 0.0001,  # still not 0 → bypass; checked separately below
    "top_p": 0.5,
    "max_tokens": 17,
    "max_completion_tokens": 18,
    "stop": ["\n"],
    "seed": 7,
    "response_format": {"type": "json_object"},
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
    "tool_choice": "none",
    "parallel_tool_calls": False,
    "chat_template_kwargs": {"enable_thinking": True},
    "enable_thinking": True,
}
TOOLS = SAMPLING_CHANGES["tools"]
# tool_choice / parallel_tool_calls need tools: they are compared on a request that has them.
NEEDS_TOOLS = {"tool_choice", "parallel_tool_calls"}


def test_every_request_field_is_in_the_key_or_known_not_to_shape_the_answer() -> None:
    # A field added to the request model must be decided on here: keyed (SAMPLING_CHANGES),
    # framing only (NON_SEMANTIC_FIELDS), or n (1 only).
    unkeyed = NON_SEMANTIC_FIELDS | {"n"}
    assert set(GatewayChatRequest.model_fields) - unkeyed == set(SAMPLING_CHANGES)


@pytest.mark.parametrize("field", [f for f in SAMPLING_CHANGES if f not in {"temperature", *NEEDS_TOOLS}])
def test_every_sampling_field_changes_the_key(field: str) -> None:
    assert key_of(request()) != key_of(request(**{field: SAMPLING_CHANGES[field]}))


@pytest.mark.parametrize("field", sorted(NEEDS_TOOLS))
def test_every_tool_option_changes_the_key(field: str) -> None:
    assert key_of(request(tools=TOOLS)) != key_of(request(tools=TOOLS, **{field: SAMPLING_CHANGES[field]}))
    named = {"type": "function", "function": {"name": "lookup"}}
    required = key_of(request(tools=TOOLS, tool_choice="required"))
    assert required != key_of(request(tools=TOOLS, tool_choice=named))


def test_tool_history_changes_the_key() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}

    def turns(result: str) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": "why?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": result},
        ]

    assert key_of(request(messages=turns("paid"))) != key_of(request(messages=turns("unpaid")))


def test_both_spellings_of_the_token_limit_share_an_entry() -> None:
    # The SDK's callers send max_tokens, LangChain's ChatOpenAI max_completion_tokens.
    assert key_of(request(max_tokens=32)) == key_of(request(max_completion_tokens=32))
    assert key_of(request(max_tokens=32)) != key_of(request(max_completion_tokens=33))
    # both sent: the stages apply max_completion_tokens, and so does the key
    assert key_of(request(max_tokens=99, max_completion_tokens=32)) == key_of(request(max_tokens=32))


def test_seeded_requests_differ_by_temperature() -> None:
    assert key_of(request(seed=1, temperature=0.7)) != key_of(request(seed=1, temperature=0.8))


def test_json_key_order_and_framing_do_not_change_the_key() -> None:
    a = GatewayChatRequest.model_validate_json(
        '{"temperature": 0, "top_p": 0.9, "messages": [{"role": "user", "content": "why?"}]}'
    )
    b = GatewayChatRequest.model_validate_json(
        '{"messages": [{"content": "why?", "role": "user"}], "top_p": 0.9, "temperature": 0, "stream": true,'
        ' "stream_options": {"include_usage": true}, "model": "auto", "user": "u1"}'
    )
    assert key_of(a) == key_of(b)


def test_messages_images_and_route_change_the_key() -> None:
    base = key_of(request())
    assert key_of(request(messages=[{"role": "user", "content": "why not?"}])) != base
    with_image = request(
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "why?"}, {"type": "image_url", "image_url": "data:x"}],
            }
        ]
    )
    assert key_of(with_image, images=[image("a" * 64)]) != key_of(with_image, images=[image("b" * 64)])
    assert key_of(request(), route="direct") != key_of(request(), route="cascade")


def test_two_api_keys_never_share_an_entry() -> None:
    a, b = key_of(request(), scope=SCOPE_A), key_of(request(), scope=SCOPE_B)
    assert a != b
    assert SCOPE_A in a and SCOPE_B in b
    assert key_of(request(), scope="ip:127.0.0.1") == key_of(
        request(), scope="ip:10.0.0.9"
    )  # open: one scope
    assert f":{OPEN_SCOPE}:" in key_of(request(), scope="ip:127.0.0.1")


def test_key_is_versioned_and_prefixed() -> None:
    assert key_of(request()).startswith("flashsight:answer:v2:")


def test_only_deterministic_requests_are_planned() -> None:
    assert is_deterministic(request(temperature=0))
    assert is_deterministic(request(temperature=0.7, seed=3))
    assert not is_deterministic(request(temperature=0.7))
    assert not is_deterministic(request(temperature=None))  # OpenAI's default is 1
    c = cache()
    assert c.plan(request(temperature=0.7), scope=SCOPE_A, cache_control=None).status == "bypass"
    assert cache(enabled=False).plan(request(), scope=SCOPE_A, cache_control=None).status == "bypass"
    assert c.plan(request(), scope=None, cache_control=None).status == "bypass"


def test_cache_control_directives() -> None:
    assert cache_directives("No-Cache, max-age=0") == {"no-cache", "max-age"}
    c = cache()
    no_cache = c.plan(request(), scope=SCOPE_A, cache_control="no-cache")
    assert (no_cache.lookup, no_cache.store, no_cache.status) == (False, True, "bypass")
    no_store = c.plan(request(), scope=SCOPE_A, cache_control="no-store")
    assert (no_store.lookup, no_store.store, no_store.status) == (True, False, None)
    both = c.plan(request(), scope=SCOPE_A, cache_control="no-cache, no-store")
    assert (both.lookup, both.store) == (False, False)


CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}


def test_only_whole_answers_are_storable() -> None:
    def answer(finish: str, content: str | None = "hi", **fields: Any) -> CachedAnswer:
        return CachedAnswer(content=content, finish_reason=finish, model="m", **fields)

    assert storable(answer("stop")) and storable(answer("length"))
    assert storable(answer("tool_calls", content=None, tool_calls=[CALL]))
    assert not storable(answer("degraded"))
    assert not storable(answer("tool_calls", content=None))  # calls announced, none there
    assert not storable(answer("stop", content=None))
    assert not storable(None)
    # A stream cut inside a call sent it in part: replayed unstreamed it would pose as a call.
    partial = {**CALL, "function": {"name": "lookup", "arguments": '{"q": '}}
    assert not storable(answer("length", content="Let me look.", tool_calls=[partial]))


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = build_redis(REDIS_TEST_URL, timeout_s=0.25)
    yield client
    await client.aclose()


async def test_put_then_get_with_ttl_in_real_redis(redis: Redis) -> None:
    prefix = f"test:{uuid.uuid4().hex}:answer"
    c = AnswerCache(RedisGuard(redis, retry_after_s=5), enabled=True, ttl_s=90, prefix=prefix)
    req = request()
    key = c.key(c.plan(req, scope=SCOPE_A, cache_control=None), req, [], "cascade")
    assert key.startswith(prefix)
    assert await c.get(key) is None
    entry = CachedAnswer(
        content="因为", finish_reason="stop", model="smollm2", models={"reasoner": "smollm2"}
    )
    assert await c.put(key, entry)
    assert await c.get(key) == entry
    assert 60 < await redis.ttl(key) <= 90
    calls = CachedAnswer(content=None, finish_reason="tool_calls", model="m", tool_calls=[CALL])
    assert await c.put(key, calls)
    assert await c.get(key) == calls  # null content stays null, the calls come back whole
    await redis.set(key, b"not json")
    assert await c.get(key) is None  # corrupt: a miss
    await redis.delete(key)


async def test_dead_redis_is_unavailable() -> None:
    c = cache()
    assert await c.get("k") == "unavailable"
    assert not await c.put("k", CachedAnswer(content="x", finish_reason="stop", model="m"))
