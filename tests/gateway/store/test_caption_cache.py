from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from gateway.store.caption_cache import CachedCaption, CaptionCache
from gateway.store.redis_guard import RedisGuard, RedisUnavailableError, build_redis
from redis.asyncio import Redis

from tests.gateway.conftest import DEAD_REDIS_URL, REDIS_TEST_URL


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = build_redis(REDIS_TEST_URL, timeout_s=0.25)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:caption"


async def test_key_names_version_model_and_image(redis: Redis) -> None:
    cache = CaptionCache(RedisGuard(redis, retry_after_s=5), ttl_s=60, prompt_version="3")
    assert cache.key("ocr-lite", "ab12") == "flashsight:caption:v3:ocr-lite:ab12"


async def test_put_then_get_with_ttl(redis: Redis, prefix: str) -> None:
    cache = CaptionCache(RedisGuard(redis, retry_after_s=5), ttl_s=120, prompt_version="1", prefix=prefix)
    assert await cache.get_many("ocr-lite", ["a", "b"]) == {}
    assert await cache.put("a", CachedCaption("an invoice", "ocr-lite"))
    found = await cache.get_many("ocr-lite", ["a", "b"])
    assert found == {"a": CachedCaption("an invoice", "ocr-lite")}
    key = cache.key("ocr-lite", "a")
    assert 100 < await redis.ttl(key) <= 120
    stored = await redis.get(key)
    assert stored is not None
    assert json.loads(stored) == {"caption": "an invoice", "model": "ocr-lite"}
    # Another model or prompt version does not see it.
    assert await cache.get_many("glm-4.6v-flash", ["a"]) == {}
    other = CaptionCache(RedisGuard(redis, retry_after_s=5), ttl_s=120, prompt_version="2", prefix=prefix)
    assert await other.get_many("ocr-lite", ["a"]) == {}
    await redis.delete(key)


async def test_corrupt_entry_is_a_miss(redis: Redis, prefix: str) -> None:
    cache = CaptionCache(RedisGuard(redis, retry_after_s=5), ttl_s=60, prompt_version="1", prefix=prefix)
    await redis.set(cache.key("m", "x"), b"not json", ex=60)
    assert await cache.get_many("m", ["x"]) == {}
    await redis.delete(cache.key("m", "x"))


async def test_dead_redis_is_unavailable_quickly_and_then_skipped() -> None:
    client = build_redis(DEAD_REDIS_URL, timeout_s=0.25)
    guard = RedisGuard(client, retry_after_s=5)
    cache = CaptionCache(guard, ttl_s=60, prompt_version="1")
    started = time.perf_counter()
    assert await cache.get_many("m", ["x"]) is None
    assert time.perf_counter() - started < 1.0
    assert not guard.available
    assert await cache.put("x", CachedCaption("c", "m")) is False
    with pytest.raises(RedisUnavailableError, match="skipped"):
        await guard.run(lambda r: r.ping())
    assert await guard.ping() is False
    await client.aclose()


async def test_guard_tries_again_after_the_pause(redis: Redis) -> None:
    guard = RedisGuard(redis, retry_after_s=0.05)

    async def fail(client: Redis) -> None:
        raise ConnectionError("boom")

    with pytest.raises(RedisUnavailableError):
        await guard.run(fail)
    assert not guard.available
    time.sleep(0.06)
    assert guard.available
    assert await guard.run(lambda r: r.ping()) is True
