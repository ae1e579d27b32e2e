"""gateway.store.redis_guard: a down Redis is noticed once and skipped for a while (real Redis)."""

from __future__ import annotations

import pytest
from gateway.config import RedisSettings
from gateway.store.redis_guard import RedisGuard, RedisUnavailableError, build_redis

from tests.gateway.conftest import DEAD_REDIS_URL, REDIS_TEST_URL


async def test_a_live_redis_runs_operations_and_answers_ping() -> None:
    guard = RedisGuard.from_settings(RedisSettings(redis_url=REDIS_TEST_URL))
    try:
        assert await guard.ping() and guard.available
        assert await guard.run(lambda client: client.ping())
    finally:
        await guard.client.aclose()


async def test_a_dead_redis_is_skipped_after_its_first_failure() -> None:
    client = build_redis(DEAD_REDIS_URL, timeout_s=0.25)
    guard = RedisGuard(client, retry_after_s=30)
    calls = 0

    async def op(c: object) -> None:
        nonlocal calls
        calls += 1
        await client.ping()

    try:
        with pytest.raises(RedisUnavailableError):
            await guard.run(op)
        with pytest.raises(RedisUnavailableError):
            await guard.run(op)
        assert calls == 1 and not guard.available and guard.breaker.state == "open"
        assert await guard.ping() is False
    finally:
        await client.aclose()
