"""gateway.answer.captioning: captions come from the cache first, vision for the rest (real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gateway.answer.captioning import Captioner
from gateway.images.normalise import ImageLimits, normalise_image
from gateway.store.caption_cache import CaptionCache
from gateway.store.redis_guard import RedisGuard, build_redis

from tests.gateway.conftest import DEAD_REDIS_URL, REDIS_TEST_URL, unique_png


class FakeVision:
    """Counts caption requests; answers with the model id and a caption naming the call."""

    def __init__(self) -> None:
        self.calls = 0

    async def model_id(self) -> str:
        return "ocr-lite"

    async def complete(self, body: dict[str, Any], *, request_id: str | None) -> dict[str, Any]:
        self.calls += 1
        assert body["temperature"] == 0.0 and body["max_tokens"] == 64
        return {"model": "ocr-lite", "choices": [{"message": {"content": f" caption {self.calls} "}}]}


@pytest.fixture
async def guard(request: pytest.FixtureRequest) -> AsyncIterator[RedisGuard]:
    url = getattr(request, "param", REDIS_TEST_URL)
    client = build_redis(url, timeout_s=0.5)
    yield RedisGuard(client, retry_after_s=5)
    await client.aclose()


def _captioner(guard: RedisGuard, vision: FakeVision) -> Captioner:
    cache = CaptionCache(guard, ttl_s=60, prompt_version="1", prefix=f"test:{uuid.uuid4().hex}")
    return Captioner(vision, cache, prompt="Describe.", max_tokens=64)  # type: ignore[arg-type]


async def test_a_second_request_is_a_cache_hit_and_duplicates_are_captioned_once(guard: RedisGuard) -> None:
    vision = FakeVision()
    captioner = _captioner(guard, vision)
    image = normalise_image(unique_png(), limits=ImageLimits())
    first = await captioner.caption([image, image])
    assert first.texts == ["caption 1", "caption 1"] and first.cache == "miss" and vision.calls == 1
    second = await captioner.caption([image])
    assert second.texts == ["caption 1"] and second.cache == "hit" and vision.calls == 1
    assert second.vision_model == "ocr-lite"


@pytest.mark.parametrize("guard", [DEAD_REDIS_URL], indirect=True)
async def test_redis_down_captions_every_time_marked_unavailable(guard: RedisGuard) -> None:
    vision = FakeVision()
    captioner = _captioner(guard, vision)
    image = normalise_image(unique_png(), limits=ImageLimits())
    assert (await captioner.caption([image])).cache == "unavailable"
    assert (await captioner.caption([image])).cache == "unavailable" and vision.calls == 2


async def test_no_image_needs_no_caption(guard: RedisGuard) -> None:
    assert (await _captioner(guard, FakeVision()).caption([])).texts == []
