"""The gateway app factory: ``create_app(settings)`` and the lifespan that owns every resource.

One aiohttp session per upstream (own connection pool and keep-alive), one Redis client
(behind a guard that skips it while it is down), the image fetcher and the keyword
table are built at start-up, put on ``app.state`` and closed on exit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
from fastapi import FastAPI
from flashsight_common.bodylimit import BodySizeLimitMiddleware
from flashsight_common.requestid import RequestIdMiddleware

from gateway.access import AccessRecorder
from gateway.admission import ImageAdmitter
from gateway.auth import KeyStore
from gateway.bodyless import BodylessMiddleware
from gateway.cache import CaptionCache
from gateway.captioning import Captioner
from gateway.config import GatewaySettings
from gateway.degrade import ReasonerGuard
from gateway.errors import InvalidRequestError, install_error_handlers
from gateway.fetch import FetchPolicy, ImageFetcher
from gateway.gatekeeper import GatekeeperMiddleware
from gateway.guarded import GuardedUpstream
from gateway.images import ImageLimits
from gateway.metrics import GatewayMetrics
from gateway.middleware import AccessMiddleware
from gateway.pipeline import Pipeline
from gateway.prompts import CAPTION_PROMPTS
from gateway.ratelimit import RateLimiter
from gateway.redis_guard import RedisGuard, build_redis
from gateway.routes import router
from gateway.routing import KeywordTable
from gateway.safety import SafetyFilter
from gateway.seeds import router as seeds_router
from gateway.shedding import LoadShedder, ShedPolicy
from gateway.upstream import UpstreamClient, UpstreamTimeouts, build_session
from gateway.web import mount_web

logger = logging.getLogger(__name__)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway in front of ``settings.vision_url`` and ``settings.reasoner_url``."""
    settings = settings or GatewaySettings()
    keywords = KeywordTable.load(settings.keywords_file)  # a broken keyword file fails now, not per request
    limits = ImageLimits(
        max_image_bytes=settings.max_image_bytes,
        max_pixels=settings.max_pixels,
        max_side=settings.max_side,
        max_decoded_bytes=settings.max_decoded_bytes_per_image,
    )
    metrics = GatewayMetrics()  # per app: the middleware needs it before the lifespan runs
    keys = KeyStore.load(settings.api_keys, settings.api_keys_file)  # an unreadable file fails now
    # Loaded here, not per request; nudenet is imported only when the filter is on.
    safety = (
        SafetyFilter(settings.safety_filter, threshold=settings.safety_threshold)
        if settings.safety_filter != "off"
        else None
    )
    shedder = LoadShedder(
        ShedPolicy(
            max_tokens_above=settings.shed_max_tokens_above,
            max_tokens=settings.shed_max_tokens,
            greedy_above=settings.shed_greedy_above,
            hold_above=settings.shed_hold_above,
            holding_reply=settings.holding_reply,
        )
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            sessions = [
                build_session(
                    max_connections=settings.upstream_max_connections,
                    keepalive_s=settings.upstream_keepalive_s,
                )
                for _ in range(2)
            ]
            for session in sessions:
                stack.push_async_callback(session.close)
            redis = build_redis(settings.redis_url, timeout_s=settings.redis_timeout_s)
            stack.push_async_callback(redis.aclose)
            fetcher = ImageFetcher(
                FetchPolicy(
                    allow_http=settings.allow_http_images,
                    allowed_domains=settings.image_domain_allowlist,
                    max_bytes=settings.max_image_bytes,
                    timeout_s=settings.image_fetch_timeout_s,
                )
            )
            stack.push_async_callback(fetcher.aclose)
            decoder = ThreadPoolExecutor(settings.decode_workers, thread_name_prefix="image-decode")
            stack.callback(decoder.shutdown, wait=False, cancel_futures=True)
            vision_client = _upstream_client(
                "vision",
                settings.vision_url,
                sessions[0],
                settings,
                total_s=settings.vision_timeout_s,
                first_token_s=settings.vision_timeout_s,
            )
            vision = GuardedUpstream(
                vision_client,
                failure_threshold=settings.vision_failure_threshold,
                open_s=settings.vision_circuit_open_s,
            )
            reasoner = _upstream_client(
                "reasoner",
                settings.reasoner_url,
                sessions[1],
                settings,
                total_s=settings.reasoner_timeout_s,
                first_token_s=settings.reasoner_first_token_timeout_s,
            )
            guard = RedisGuard(redis, retry_after_s=settings.redis_retry_after_s)
            cache = CaptionCache(
                guard, ttl_s=settings.caption_ttl_seconds, prompt_version=settings.caption_prompt_version
            )
            app.state.redis_guard = guard
            app.state.rate_limiter = (
                RateLimiter(
                    guard, per_minute=settings.rate_limit_per_minute, fail_open=settings.rate_limit_fail_open
                )
                if settings.rate_limit_per_minute
                else None
            )
            app.state.auth_failure_limiter = (
                RateLimiter(guard, per_minute=settings.auth_failures_per_minute, fail_open=True)
                if settings.auth_failures_per_minute and not keys.open
                else None
            )
            app.state.pipeline = Pipeline(
                admitter=ImageAdmitter(
                    limits=limits,
                    max_images=settings.max_images_per_request,
                    fetcher=fetcher,
                    safety=safety,
                    decoder=decoder,
                    max_request_decoded_bytes=settings.max_decoded_bytes_per_request,
                ),
                keywords=keywords,
                captioner=Captioner(
                    vision,
                    cache,
                    prompt=CAPTION_PROMPTS[settings.caption_prompt_version],
                    max_tokens=settings.caption_max_tokens,
                    metrics=metrics,
                ),
                vision=vision,
                reasoner=ReasonerGuard(
                    reasoner,
                    failure_threshold=settings.reasoner_failure_threshold,
                    open_s=settings.reasoner_circuit_open_s,
                ),
            )
            metrics.track_circuit("reasoner", lambda: app.state.pipeline.reasoner.breaker.state)
            metrics.track_circuit("redis", lambda: guard.breaker.state)
            metrics.track_circuit("vision", lambda: vision.breaker.state)
            if keys.open:
                logger.warning(
                    "!!! NO API KEYS CONFIGURED: this gateway answers ANYONE who can reach it. "
                    "Set GATEWAY_API_KEYS or GATEWAY_API_KEYS_FILE before exposing it. !!!"
                )
            else:
                logger.info("API keys: %d accepted (stored as SHA-256)", len(keys))
            logger.info(
                "gateway ready: vision=%s reasoner=%s redis=%s keywords=%d zh + %d en",
                settings.vision_url,
                settings.reasoner_url,
                _redacted(settings.redis_url),
                len(keywords.zh),
                len(keywords.en),
            )
            yield

    app = FastAPI(title="FlashSight gateway", lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.shedder = shedder
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(seeds_router)
    mount_web(app)
    # Added last = outermost: every response, 413s included, carries X-Request-ID and is counted.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        bad_length_code=InvalidRequestError.default_code,
    )
    # before the body is read
    app.add_middleware(GatekeeperMiddleware, keys=keys, ops_public=settings.ops_public)
    app.add_middleware(BodylessMiddleware)  # before the key check: OPTIONS and exempt paths read no body
    app.add_middleware(AccessMiddleware, recorder=AccessRecorder(metrics, log_prompts=settings.log_prompts))
    app.add_middleware(RequestIdMiddleware)
    return app


def _redacted(url: str) -> str:
    # redis://:password@host → redis://***@host, so a password never reaches the log.
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url


def _upstream_client(
    name: str,
    url: str,
    session: aiohttp.ClientSession,
    settings: GatewaySettings,
    *,
    total_s: float,
    first_token_s: float,
) -> UpstreamClient:
    """One upstream's client: the shared connect and idle timeouts, its own total and first-token."""
    timeouts = UpstreamTimeouts(
        connect_s=settings.connect_timeout_s,
        total_s=total_s,
        first_token_s=first_token_s,
        idle_s=settings.stream_idle_timeout_s,
    )
    return UpstreamClient(name, url, session, timeouts=timeouts)
