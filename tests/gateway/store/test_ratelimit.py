"""The rate limiter on a private Redis: exact window, headers, Redis down both ways."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway.store.ratelimit import RateLimitedError, RateLimiter, RateLimitUnavailableError
from gateway.store.redis_guard import RedisGuard, build_redis

from devkit.stack import RedisProcess


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


async def test_exactly_n_per_window_then_429_with_headers(redis_server: RedisProcess) -> None:
    client = build_redis(redis_server.url, timeout_s=0.5)
    limiter = RateLimiter(RedisGuard(client, retry_after_s=1), per_minute=3)
    verdicts = [await limiter.check("key:a") for _ in range(3)]
    assert [v.remaining for v in verdicts if v] == [2, 1, 0]
    with pytest.raises(RateLimitedError) as info:
        await limiter.check("key:a")
    err = info.value
    assert err.status() == 429 and 1 <= int(err.headers()["Retry-After"]) <= 60
    assert err.headers()["x-ratelimit-limit-requests"] == "3"
    assert err.headers()["x-ratelimit-remaining-requests"] == "0"
    assert (await limiter.check("key:b")) is not None  # its own window
    await client.aclose()


async def test_redis_down_fails_open_or_closed_as_configured(redis_server: RedisProcess) -> None:
    client = build_redis(redis_server.url, timeout_s=0.2)
    redis_server.kill()
    open_limiter = RateLimiter(RedisGuard(client, retry_after_s=5), per_minute=1)
    assert await open_limiter.check("key:a") is None
    assert await open_limiter.check("key:a") is None  # skipped at once while marked down
    assert open_limiter.skipped_unavailable == 2
    closed = RateLimiter(RedisGuard(client, retry_after_s=5), per_minute=1, fail_open=False)
    with pytest.raises(RateLimitUnavailableError) as info:
        await closed.check("key:a")
    assert info.value.status() == 503 and "Retry-After" in info.value.headers()
    await client.aclose()
