"""Per-caller request-rate limits, kept in Redis so every gateway replica counts the same window.

The algorithm is the ``limits`` library's *moving window* (a Redis sorted-list of hit
timestamps trimmed and appended by one Lua script: atomic, exact — N per 60 s means at
most N in any 60 s, across replicas). It runs on the gateway's own redis-py connection
pool, through :class:`gateway.store.redis_guard.RedisGuard`, so a down Redis is noticed in one
place and skipped for a while instead of being waited on per request.

Redis down: ``fail_open=True`` (default) lets requests through unlimited, logs a warning
(once per outage, by the guard) and counts ``skipped_unavailable``; ``fail_open=False``
refuses with 503 + ``Retry-After``. Why open by default: the limit protects capacity, not
secrets; refusing every caller because the counter store is down would turn a Redis
blip into a full outage. See docs/security.md.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from gateway.errors import RateLimitedError, RateLimitUnavailableError
from gateway.store.redis_guard import RedisGuard, RedisUnavailableError

if TYPE_CHECKING:
    from gateway.config import AuthSettings

logger = logging.getLogger(__name__)

KEY_PREFIX = "flashsight:ratelimit"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One request's rate-limit outcome and the ``x-ratelimit-*`` headers that describe it."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    """Seconds until a request is available again (the oldest hit in the window expires)."""

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": f"{max(0.0, self.reset_s):.3f}s",
        }


class RateLimiter:
    """``check(identity)`` → :class:`Verdict`, or raises :class:`RateLimitedError`."""

    def __init__(self, guard: RedisGuard, *, per_minute: int, fail_open: bool = True) -> None:
        self.guard = guard
        self.item = RateLimitItemPerMinute(per_minute)
        self.fail_open = fail_open
        self.skipped_unavailable = 0
        """Requests let through unlimited because Redis was down (a count in this process, not a metric)."""
        storage = RedisStorage(
            "async+redis://shared-pool:6379",  # parsed only: the connection pool below is used
            implementation="redispy",
            connection_pool=guard.client.connection_pool,  # type: ignore[arg-type]  # limits types options narrowly
            key_prefix=KEY_PREFIX,
        )
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, auth: AuthSettings, guard: RedisGuard) -> RateLimiter | None:
        """The limiter of ``GATEWAY_RATE_LIMIT_PER_MINUTE``; None when it is 0 (no limit)."""
        if not auth.rate_limit_per_minute:
            return None
        return cls(guard, per_minute=auth.rate_limit_per_minute, fail_open=auth.rate_limit_fail_open)

    async def check(self, identity: str) -> Verdict | None:
        """Count one request for ``identity``; None when Redis is down and failing open."""
        try:
            allowed, (reset_at, remaining) = await self.guard.run(lambda _: self._hit(identity))
        except RedisUnavailableError as exc:
            if not self.fail_open:
                raise RateLimitUnavailableError(
                    "rate limits cannot be checked right now (their store is unavailable); retry shortly"
                ) from exc
            self.skipped_unavailable += 1
            return None
        verdict = Verdict(
            allowed=allowed, limit=self.item.amount, remaining=remaining, reset_s=reset_at - time.time()
        )
        if not allowed:
            raise RateLimitedError(
                f"rate limit reached: {self.item.amount} requests per minute for this caller "
                "(its API key, or its address when no keys are set); "
                f"retry in {math.ceil(verdict.reset_s)}s",
                retry_after=max(1, math.ceil(verdict.reset_s)),
                limit_headers=verdict.headers(),
            )
        return verdict

    async def _hit(self, identity: str) -> tuple[bool, tuple[float, int]]:
        allowed = await self._limiter.hit(self.item, identity)
        stats = await self._limiter.get_window_stats(self.item, identity)
        return allowed, (stats.reset_time, stats.remaining)
