"""The app factory every model service builds on: routes, errors, middleware, lifespan.

A service calls :func:`create_model_app` with its settings and its backend dispatch
table (name → factory). Start-up builds the backend, then loads and warms it up on the
batching engine's thread (the one thread that runs the model, :mod:`modelserver.engine`)
while the server already answers ``/healthz`` (and ``/readyz`` with 503 "loading"), then
starts the engine serving and reports ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress

from fastapi import APIRouter, FastAPI
from flashsight_common.bodylimit import BodySizeLimitMiddleware
from flashsight_common.requestid import RequestIdMiddleware

from modelserver.backend import Backend
from modelserver.config import ModelServerSettings
from modelserver.engine import Engine
from modelserver.errors import InvalidRequestError, install_error_handlers
from modelserver.metrics import ModelMetrics
from modelserver.middleware import AccessMiddleware
from modelserver.readiness import Readiness
from modelserver.routes import router

logger = logging.getLogger(__name__)

BackendFactory = Callable[[ModelServerSettings], Backend]


class UnknownBackendError(ValueError):
    """``settings.backend`` names no entry of the service's backend table."""


def pick_backend(backends: Mapping[str, BackendFactory], name: str) -> BackendFactory:
    """The factory registered as ``name``; the error lists the known names."""
    try:
        return backends[name]
    except KeyError:
        known = ", ".join(sorted(backends)) or "(none)"
        raise UnknownBackendError(f"unknown backend {name!r}; known backends: {known}") from None


def create_model_app(
    settings: ModelServerSettings,
    *,
    backends: Mapping[str, BackendFactory],
    title: str,
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """An OpenAI-compatible model service serving ``backends[settings.backend]``."""
    factory = pick_backend(backends, settings.backend)  # a typo fails now, not after start-up
    metrics = ModelMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = factory(settings)
        app.state.backend = backend
        engine = Engine(
            backend, max_batch_size=settings.max_batch_size, max_wait_s=settings.max_wait_s,
            max_queue=settings.max_queue, on_batch=metrics.batch_size.observe,
        )
        metrics.track_queue_depth(lambda: engine.queue_depth, capacity=settings.max_queue)
        startup = asyncio.create_task(_load_and_start(app, backend, engine, settings))
        try:
            yield
        finally:
            app.state.readiness.phase = "stopping"
            startup.cancel()
            with suppress(asyncio.CancelledError):
                await startup
            await asyncio.to_thread(engine.stop)
            app.state.engine = None

    app = FastAPI(title=title, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.readiness = Readiness()
    app.state.backend = None
    app.state.engine = None
    install_error_handlers(app)
    app.include_router(router)
    for extra in extra_routers:
        app.include_router(extra)
    # Added last = outermost: every response, 413s included, carries X-Request-ID and is counted.
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes,
        bad_length_code=InvalidRequestError.default_code,
    )
    app.add_middleware(AccessMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    return app


async def _load_and_start(
    app: FastAPI, backend: Backend, engine: Engine, settings: ModelServerSettings
) -> None:
    readiness: Readiness = app.state.readiness
    name = f"{settings.backend} backend ({settings.model or backend.model_id})"
    try:
        started = time.perf_counter()
        logger.info("loading %s on device=%s dtype=%s ...", name, settings.device, settings.dtype)
        await engine.prepare(backend.load)
        loaded = time.perf_counter()
        logger.info("loaded %s in %.1fs; warming up ...", name, loaded - started)
        readiness.phase = "warming_up"
        await engine.prepare(backend.warmup)
        logger.info("warmed up in %.1fs", time.perf_counter() - loaded)
        engine.start()
        app.state.engine = engine
        readiness.phase = "ready"
        logger.info("ready: serving %r (batch<=%d, wait<=%gms, queue<=%d)",
                    settings.served_model_name or backend.model_id, settings.max_batch_size,
                    settings.max_wait_ms, settings.max_queue)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # Stay up so /readyz can say why (and an orchestrator restarts us); never serve half-loaded.
        readiness.phase = "failed"
        readiness.error = f"{type(exc).__name__}: {exc}"
        logger.exception("failed to start %s", name)
