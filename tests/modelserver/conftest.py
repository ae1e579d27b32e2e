"""An in-process model app (shared runtime + FakeBackend) and an HTTP client for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from modelserver.app import create_model_app
from modelserver.config import ModelServerSettings

from tests.support.fake_backend import FakeBackend


def build_app(backend: FakeBackend | None = None, **settings: Any) -> tuple[FastAPI, FakeBackend]:
    backend = backend or FakeBackend(step_s=0.002)
    config = ModelServerSettings(backend="fake", **settings)
    return create_model_app(config, backends={"fake": lambda _: backend}, title="test"), backend


@asynccontextmanager
async def serve(app: FastAPI, *, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model", timeout=10) as client:
            if wait_ready:
                deadline = time.monotonic() + 5
                while (await client.get("/readyz")).status_code != 200:
                    assert time.monotonic() < deadline, "app never became ready"
                    await asyncio.sleep(0.01)
            yield client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app, _ = build_app()
    async with serve(app) as http:
        yield http


ChatBody = Callable[..., dict[str, Any]]


def chat(text: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **fields}
