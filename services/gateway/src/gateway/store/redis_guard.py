"""Redis access that never fails a request: short timeouts, and skip Redis for a while after a failure.

The Redis client itself is built in the lifespan (``main.py``) and shared; this guard is
what every Redis user (caption cache now, rate limits later) calls through, so "Redis is
down" is decided and logged in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.upstreams.breaker import CircuitBreaker

if TYPE_CHECKING:
    from gateway.config import RedisSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RedisUnavailableError(Exception):
    """Redis failed or is being skipped after a recent failure; carry on without it."""


def build_redis(url: str, *, timeout_s: float) -> Redis:
    """A pooled async Redis client whose every call gives up after ``timeout_s``."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry_on_timeout=False,
        health_check_interval=30,
    )


class RedisGuard:
    """Runs Redis operations; a failure marks Redis unavailable for ``retry_after_s`` (logged once)."""

    def __init__(self, client: Redis, *, retry_after_s: float) -> None:
        self.client = client
        self._breaker = CircuitBreaker(threshold=1, open_s=retry_after_s)

    @classmethod
    def from_settings(cls, redis: RedisSettings) -> RedisGuard:
        """A guard around a new client of ``REDIS_URL`` (close it with ``guard.client.aclose()``)."""
        client = build_redis(redis.redis_url, timeout_s=redis.redis_timeout_s)
        return cls(client, retry_after_s=redis.redis_retry_after_s)

    @property
    def breaker(self) -> CircuitBreaker:
        """The breaker deciding whether Redis is skipped (read by /metrics)."""
        return self._breaker

    @property
    def available(self) -> bool:
        return not self._breaker.is_open  # a read: must not take the half-open probe

    async def run(self, op: Callable[[Redis], Awaitable[T]]) -> T:
        """``await op(client)``, or raise :class:`RedisUnavailableError` without waiting if Redis is down."""
        if not self._breaker.allow():
            raise RedisUnavailableError("redis skipped after a recent failure")
        try:
            result = await op(self.client)
        except (RedisError, OSError) as exc:
            # Log the transition only: a down Redis would otherwise log once per request.
            if not self._breaker.is_open and self._breaker.record_failure():
                logger.warning(
                    "redis unavailable (%s: %s); answering uncached for now", type(exc).__name__, exc
                )
            raise RedisUnavailableError(str(exc)) from exc
        if self._breaker.record_success():
            logger.info("redis is back")
        return result

    async def ping(self) -> bool:
        """Whether Redis answers PING now (always tries, for /readyz)."""
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False
