"""The door: API key check, then the per-caller rate limit, before any body is read.

An ASGI middleware (not a dependency) so every API route — OpenAI, seed adapters,
``/v1/models`` — is covered, and a refused request costs no body read. Health,
readiness, metrics and the web page are exempt: probes and browsers carry no key.
Allowed responses carry the ``x-ratelimit-*`` headers too, as OpenAI's do.
"""

from __future__ import annotations

from flashsight_common.requestid import header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.auth import KeyStore
from gateway.errors import GatewayError, error_response
from gateway.store.ratelimit import RateLimiter

EXEMPT_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/favicon.ico", "/index.html"})
EXEMPT_PREFIXES = ("/static/",)


def is_exempt(path: str) -> bool:
    """Paths served without a key and without counting against a limit."""
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


class GatekeeperMiddleware:
    """401 for a missing/wrong key, 429 over the rate limit; otherwise the request passes on."""

    def __init__(self, app: ASGIApp, *, keys: KeyStore) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_exempt(scope["path"]) or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter | None = getattr(scope["app"].state, "rate_limiter", None)
        client = scope.get("client")
        try:
            caller = self.keys.authenticate(
                header(scope, "authorization"), header(scope, "x-api-key"), client[0] if client else "-"
            )
            scope.setdefault("state", {})["caller"] = caller.identity
            verdict = await limiter.check(caller.identity) if limiter is not None else None
        except GatewayError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if verdict is None:
            await self.app(scope, receive, send)
            return
        extra = [(k.encode(), v.encode()) for k, v in verdict.headers().items()]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_limits)
