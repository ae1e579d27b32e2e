"""Captions for the cascade route: the cache first, the vision model for what is missing.

Each distinct image (by SHA-256 of its normalised bytes) is captioned once per request,
the missing ones concurrently; new captions are stored under the model that wrote them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.answer.prompts import CAPTION_PROMPTS
from gateway.answer.upstream_answers import readable_model
from gateway.answer.upstream_bodies import caption_body
from gateway.images.normalise import NormalisedImage
from gateway.schemas import CacheStatus
from gateway.store.caption_cache import CachedCaption, CaptionCache
from gateway.telemetry.metrics import GatewayMetrics
from gateway.upstreams.client import UpstreamClient
from gateway.upstreams.guarded import GuardedUpstream

if TYPE_CHECKING:
    from gateway.config import AnswerSettings


@dataclass(frozen=True, slots=True)
class Captions:
    """One caption per image (conversation order), the cache outcome and the captioning model."""

    texts: list[str]
    cache: CacheStatus | None
    vision_model: str | None
    elapsed_ms: float


class Captioner:
    """Captions images with the versioned caption prompt, through the caption cache."""

    def __init__(
        self,
        vision: UpstreamClient | GuardedUpstream,
        cache: CaptionCache,
        *,
        prompt: str,
        max_tokens: int,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.vision = vision
        self.cache = cache
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.metrics = metrics

    @classmethod
    def from_settings(
        cls,
        answer: AnswerSettings,
        *,
        vision: UpstreamClient | GuardedUpstream,
        cache: CaptionCache,
        metrics: GatewayMetrics | None,
    ) -> Captioner:
        """Captions by the prompt ``GATEWAY_CAPTION_PROMPT_VERSION`` names, ``_CAPTION_MAX_TOKENS`` long."""
        prompt = CAPTION_PROMPTS[answer.caption_prompt_version]
        return cls(vision, cache, prompt=prompt, max_tokens=answer.caption_max_tokens, metrics=metrics)

    async def caption(self, images: Sequence[NormalisedImage], *, request_id: str | None = None) -> Captions:
        """Captions of ``images``; vision failures propagate (there is nothing to fall back to)."""
        started = time.perf_counter()
        if not images:
            return Captions([], None, None, 0.0)
        unique = {image.sha256: image for image in images}
        model_id = await self.vision.model_id()
        cached = await self.cache.get_many(model_id, list(unique))
        known: dict[str, CachedCaption] = dict(cached or {})
        missing = [image for sha, image in unique.items() if sha not in known]
        if self.metrics is not None:
            self.metrics.record_caption_lookups(
                hits=len(unique) - len(missing) if cached is not None else 0,
                misses=len(missing) if cached is not None else 0,
                unavailable=len(unique) if cached is None else 0,
            )
        fresh = await asyncio.gather(*(self._caption_one(image, model_id, request_id) for image in missing))
        known.update({image.sha256: entry for image, entry in zip(missing, fresh, strict=True)})
        if cached is not None and fresh:
            await asyncio.gather(
                *(self.cache.put(image.sha256, entry) for image, entry in zip(missing, fresh, strict=True))
            )
        return Captions(
            texts=[known[image.sha256].caption for image in images],
            cache=_cache_status(cached, hits=len(unique) - len(missing), total=len(unique)),
            vision_model=(fresh[-1] if fresh else known[images[0].sha256]).model,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    async def _caption_one(
        self, image: NormalisedImage, model_id: str, request_id: str | None
    ) -> CachedCaption:
        body = caption_body(self.prompt, image.data_url(), model_id, max_tokens=self.max_tokens)
        answer = await self.vision.complete(body, request_id=request_id)
        text = answer["choices"][0].get("message", {}).get("content") or ""
        return CachedCaption(caption=text.strip(), model=readable_model(answer.get("model")) or model_id)


def _cache_status(cached: object, *, hits: int, total: int) -> CacheStatus:
    if cached is None:
        return "unavailable"
    if hits == total:
        return "hit"
    return "miss" if hits == 0 else "partial"
