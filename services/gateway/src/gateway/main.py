"""The gateway app factory: ``create_app(settings)``, and the lifespan that owns every resource.

Read it top to bottom: :func:`create_app` builds what must fail at start-up rather than
per request (the keyword table, the API keys, the safety model), then the app with its
error handlers, routes and middleware; :func:`lifespan` opens the connections (one
aiohttp session per upstream, Redis behind its guard, the image fetcher), builds the
request service from them, puts it on ``app.state`` and closes everything on exit. Each
component builds itself from its settings section (``X.from_settings``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from flashsight_common.bodylimit import BodySizeLimitMiddleware
from flashsight_common.requestid import RequestIdMiddleware

from gateway.answer.captioning import Captioner
from gateway.answer.route_choice import KeywordTable
from gateway.answer.service import AnswerService
from gateway.answer.shedding import LoadShedder
from gateway.api.access_middleware import AccessMiddleware
from gateway.api.auth import KeyStore
from gateway.api.auth_middleware import GatekeeperMiddleware
from gateway.api.bodyless import BodylessMiddleware
from gateway.api.routes import router
from gateway.api.seed_endpoints import router as seeds_router
from gateway.api.web import mount_web
from gateway.config import GatewaySettings
from gateway.errors import InvalidRequestError, install_error_handlers
from gateway.images.admission import ImageAdmitter
from gateway.images.fetch import ImageFetcher
from gateway.images.safety import SafetyFilter
from gateway.store.answer_cache import AnswerCache
from gateway.store.caption_cache import CaptionCache
from gateway.store.ratelimit import RateLimiter
from gateway.store.redis_guard import RedisGuard
from gateway.telemetry.access_log import AccessRecorder
from gateway.telemetry.metrics import GatewayMetrics
from gateway.upstreams.client import build_session
from gateway.upstreams.guarded import GuardedUpstream, ReasonerGuard

logger = logging.getLogger(__name__)


class _StartupParts:
    """What is built before the app: each of these fails at start-up, with its message."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.keywords = KeywordTable.load(settings.answer.keywords_file)  # a broken keyword file fails now
        self.keys = KeyStore.from_settings(settings.auth)  # an unreadable keys file fails now
        self.safety = SafetyFilter.from_settings(settings.images)  # nudenet is imported only when on
        self.shedder = LoadShedder.from_settings(settings.shedding)
        self.metrics = GatewayMetrics()  # per app: the middleware needs it before the lifespan runs


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway in front of ``settings.upstreams.vision_url`` and ``.reasoner_url``."""
    settings = settings or GatewaySettings()
    parts = _StartupParts(settings)

    @asynccontextmanager
    async def lifespan_of_this_app(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app, settings, parts):
            yield

    app = FastAPI(title="FlashSight gateway", lifespan=lifespan_of_this_app)
    app.state.settings = settings
    app.state.metrics = parts.metrics
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(seeds_router)
    mount_web(app)
    _add_middleware(app, settings, parts)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI, settings: GatewaySettings, parts: _StartupParts) -> AsyncIterator[None]:
    """Open the connections, build the request service on ``app.state``, close all on exit."""
    async with AsyncExitStack() as stack:
        upstreams = settings.upstreams
        sessions = [
            build_session(
                max_connections=upstreams.upstream_max_connections, keepalive_s=upstreams.upstream_keepalive_s
            )
            for _ in ("vision", "reasoner")  # one pool each: a slow reasoner cannot starve vision
        ]
        for session in sessions:
            stack.push_async_callback(session.close)
        guard = RedisGuard.from_settings(settings.redis)
        stack.push_async_callback(guard.client.aclose)
        fetcher = ImageFetcher.from_settings(settings.images)
        stack.push_async_callback(fetcher.aclose)
        decoder = ThreadPoolExecutor(settings.images.decode_workers, thread_name_prefix="image-decode")
        stack.callback(decoder.shutdown, wait=False, cancel_futures=True)

        vision = GuardedUpstream.vision_from_settings(upstreams, sessions[0])
        reasoner = ReasonerGuard.from_settings(upstreams, sessions[1])
        cache = CaptionCache.from_settings(settings.answer, guard)
        app.state.redis_guard = guard
        app.state.rate_limiter = RateLimiter.from_settings(settings.auth, guard)
        app.state.auth_failure_limiter = (
            RateLimiter(guard, per_minute=settings.auth.auth_failures_per_minute, fail_open=True)
            if settings.auth.auth_failures_per_minute and not parts.keys.open
            else None
        )
        app.state.service = AnswerService.from_settings(
            settings.answer,
            admitter=ImageAdmitter.from_settings(
                settings.images, fetcher=fetcher, safety=parts.safety, decoder=decoder
            ),
            keywords=parts.keywords,
            captioner=Captioner.from_settings(
                settings.answer, vision=vision, cache=cache, metrics=parts.metrics
            ),
            vision=vision,
            reasoner=reasoner,
            shedder=parts.shedder,
            answer_cache=AnswerCache.from_settings(settings.answer, guard),
        )
        parts.metrics.track_circuit("reasoner", lambda: reasoner.breaker.state)
        parts.metrics.track_circuit("redis", lambda: guard.breaker.state)
        parts.metrics.track_circuit("vision", lambda: vision.breaker.state)
        _log_start(settings, parts)
        yield


def _add_middleware(app: FastAPI, settings: GatewaySettings, parts: _StartupParts) -> None:
    # Added last = outermost: every response, 413s included, carries X-Request-ID and is counted.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.server.max_body_bytes,
        bad_length_code=InvalidRequestError.default_code,
    )
    # before the body is read
    app.add_middleware(GatekeeperMiddleware, keys=parts.keys, ops_public=settings.auth.ops_public)
    app.add_middleware(BodylessMiddleware)  # before the key check: OPTIONS and exempt paths read no body
    recorder = AccessRecorder(parts.metrics, log_prompts=settings.logging.log_prompts)
    app.add_middleware(AccessMiddleware, recorder=recorder)
    app.add_middleware(RequestIdMiddleware)


def _log_start(settings: GatewaySettings, parts: _StartupParts) -> None:
    if parts.keys.open:
        logger.warning(
            "!!! NO API KEYS CONFIGURED: this gateway answers ANYONE who can reach it. "
            "Set GATEWAY_API_KEYS or GATEWAY_API_KEYS_FILE before exposing it. !!!"
        )
    else:
        logger.info("API keys: %d accepted (stored as SHA-256)", len(parts.keys))
    logger.info(
        "gateway ready: vision=%s reasoner=%s redis=%s keywords=%d zh + %d en",
        settings.upstreams.vision_url,
        settings.upstreams.reasoner_url,
        _redacted(settings.redis.redis_url),
        len(parts.keywords.zh),
        len(parts.keywords.en),
    )


def _redacted(url: str) -> str:
    # redis://:password@host → redis://***@host, so a password never reaches the log.
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url
