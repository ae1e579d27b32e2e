"""Gateway test fixtures: stub vision/reasoner servers on real sockets, the app with its lifespan."""

from __future__ import annotations

import base64
import io
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from gateway.config import GatewaySettings
from gateway.main import create_app
from PIL import Image

from devkit.stub_upstream import StubBehaviour, StubUpstream

REDIS_TEST_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once

VISION_MODEL = "ocr-lite"
REASONER_MODEL = "smollm2-135m-instruct"


@pytest.fixture
async def vision() -> AsyncIterator[StubUpstream]:
    async with StubUpstream(model=VISION_MODEL, behaviour=StubBehaviour(answer="订单号是 12345")) as stub:
        yield stub


@pytest.fixture
async def reasoner() -> AsyncIterator[StubUpstream]:
    behaviour = StubBehaviour(answer="Because the order was paid twice, refund one payment.")
    async with StubUpstream(model=REASONER_MODEL, behaviour=behaviour) as stub:
        yield stub


@pytest.fixture
def make_settings(vision: StubUpstream, reasoner: StubUpstream) -> Callable[..., GatewaySettings]:
    def build(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "vision_url": vision.url,
            "reasoner_url": reasoner.url,
            "redis_url": REDIS_TEST_URL,
            "reasoner_timeout_s": 1.0,
            "reasoner_first_token_timeout_s": 0.5,
            "stream_idle_timeout_s": 0.5,
            "vision_timeout_s": 1.0,
        }
        return GatewaySettings(**{**values, **overrides})

    return build


@asynccontextmanager
async def gateway_client(
    settings: GatewaySettings,
    *,
    raise_app_exceptions: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the gateway app in-process, with its lifespan run."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=10) as client:
            yield client


@pytest.fixture
async def client(make_settings: Callable[..., GatewaySettings]) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(make_settings()) as c:
        yield c


def unique_png(size: tuple[int, int] = (64, 48)) -> bytes:
    """A PNG no other test uses (random colour), so its caption-cache key is fresh."""
    colour = tuple(uuid.uuid4().bytes[:3])
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def chat_body(question: str, *images: bytes, **extra: Any) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": data_url(i)}} for i in images]
    content.append({"type": "text", "text": question})
    return {"model": "auto", "messages": [{"role": "user", "content": content}], **extra}
