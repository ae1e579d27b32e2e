"""The caption cache: one Redis string per (caption prompt version, vision model, image).

Key ``flashsight:caption:v{prompt_version}:{vision_model_id}:{image_sha256}``; value a
small JSON object ``{"caption", "model"}``; expiry ``caption_ttl_seconds``. The SHA-256
is of the *normalised* image bytes, so the same picture sent as PNG or JPEG, rotated by
EXIF or not, hits the same entry. Redis trouble never fails a request: lookups report
"unavailable" and the captions are computed (and not stored).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from gateway.store.redis_guard import RedisGuard, RedisUnavailableError

if TYPE_CHECKING:
    from gateway.config import AnswerSettings

logger = logging.getLogger(__name__)

KEY_PREFIX = "flashsight:caption"


@dataclass(frozen=True, slots=True)
class CachedCaption:
    """A caption and the vision model that wrote it."""

    caption: str
    model: str


class CaptionCache:
    """Get and put captions by image SHA-256; ``None`` from :meth:`get_many` means Redis is unavailable."""

    def __init__(
        self, guard: RedisGuard, *, ttl_s: int, prompt_version: str, prefix: str = KEY_PREFIX
    ) -> None:
        self.guard = guard
        self.ttl_s = ttl_s
        self.prompt_version = prompt_version
        self.prefix = prefix

    @classmethod
    def from_settings(cls, answer: AnswerSettings, guard: RedisGuard) -> CaptionCache:
        """Captions kept ``GATEWAY_CAPTION_TTL_SECONDS``, keyed by ``GATEWAY_CAPTION_PROMPT_VERSION``."""
        return cls(guard, ttl_s=answer.caption_ttl_seconds, prompt_version=answer.caption_prompt_version)

    def key(self, model_id: str, image_sha256: str) -> str:
        return f"{self.prefix}:v{self.prompt_version}:{model_id}:{image_sha256}"

    async def get_many(self, model_id: str, shas: Sequence[str]) -> dict[str, CachedCaption] | None:
        """The cached captions among ``shas`` (missing ones left out), or None if Redis is unavailable."""
        if not shas:
            return {}
        keys = [self.key(model_id, sha) for sha in shas]

        async def mget(client: Redis) -> list[bytes | str | None]:
            return await client.mget(keys)

        try:
            values = await self.guard.run(mget)
        except RedisUnavailableError:
            return None
        found: dict[str, CachedCaption] = {}
        for sha, raw in zip(shas, values, strict=True):
            entry = _decode(raw)
            if entry is not None:
                found[sha] = entry
        return found

    async def put(self, image_sha256: str, entry: CachedCaption) -> bool:
        """Store a caption under the model that wrote it; False if Redis is unavailable."""
        value = json.dumps({"caption": entry.caption, "model": entry.model}, ensure_ascii=False)
        key = self.key(entry.model, image_sha256)

        async def setex(client: Redis) -> object:
            return await client.set(key, value, ex=self.ttl_s)

        try:
            await self.guard.run(setex)
        except RedisUnavailableError:
            return False
        return True


def _decode(raw: bytes | str | None) -> CachedCaption | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return CachedCaption(caption=str(data["caption"]), model=str(data["model"]))
    except (ValueError, KeyError, TypeError):
        # A corrupt entry is a miss (it will be overwritten), never an error.
        logger.warning("ignoring unreadable caption cache entry")
        return None
