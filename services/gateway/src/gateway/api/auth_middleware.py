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
from gateway.errors import (
    AuthenticationError,
    AuthFailuresLimitedError,
    GatewayError,
    RateLimitedError,
    error_response,
)
from gateway.store.ratelimit import RateLimiter

EXEMPT_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/favicon.ico", "/index.html"})
EXEMPT_PREFIXES = ("/static/",)
# What operations endpoints show only to a key holder (unless GATEWAY_OPS_PUBLIC=true, or no keys
# are set): /metrics not at all (401), /readyz its status only (model names, circuit states
# and per-endpoint counts tell an attacker what runs here and when it is weak).
KEYED_OPS_PATHS = frozenset({"/metrics"})
DETAILED_OPS_PATHS = frozenset({"/readyz"})


def is_exempt(path: str) -> bool:
    """Paths served without a key and without counting against a limit."""
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


class GatekeeperMiddleware:
    """401 for a missing/wrong key, 429 over the rate limit; otherwise the request passes on."""

    def __init__(self, app: ASGIApp, *, keys: KeyStore, ops_public: bool = False) -> None:
        self.app = app
        self.keys = keys
        self.ops_guarded = not ops_public and not keys.open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ops_path = scope["type"] == "http" and scope["path"] in KEYED_OPS_PATHS | DETAILED_OPS_PATHS
        if ops_path and self.ops_guarded:
            await self._ops(scope, receive, send)
            return
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
            refusal = await _counted_failure(scope, exc) if isinstance(exc, AuthenticationError) else exc
            await error_response(refusal)(scope, receive, send)
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

    async def _ops(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An operations endpoint: full answer with a key; /readyz's status only, /metrics 401, without."""
        client = scope.get("client")
        try:
            self.keys.authenticate(
                header(scope, "authorization"), header(scope, "x-api-key"), client[0] if client else "-"
            )
        except AuthenticationError as exc:
            if scope["path"] in KEYED_OPS_PATHS:
                await error_response(await _counted_failure(scope, exc))(scope, receive, send)
                return
            scope.setdefault("state", {})["ops_detail"] = False
        await self.app(scope, receive, send)


async def _counted_failure(scope: Scope, exc: AuthenticationError) -> GatewayError:
    """The 401 to answer, or a 429 once this address sent too many missing or wrong keys.

    Only failures are counted (``GATEWAY_AUTH_FAILURES_PER_MINUTE`` per client address, in
    Redis like the request limit, failing open), so guessing keys costs time while a
    caller with a valid key from the same address is never held back.
    """
    limiter: RateLimiter | None = getattr(scope["app"].state, "auth_failure_limiter", None)
    if limiter is None:
        return exc
    client = scope.get("client")
    try:
        await limiter.check(f"authfail:{client[0] if client else '-'}")
    except RateLimitedError as limited:
        return AuthFailuresLimitedError(
            f"too many requests with a missing or wrong API key from this address "
            f"({limiter.item.amount} per minute); retry in {limited.retry_after}s with a valid key",
            retry_after=limited.retry_after or 1,
            limit_headers=limited.limit_headers,
        )
    except GatewayError:  # the counter store is down: the 401 still stands
        return exc
    return exc
