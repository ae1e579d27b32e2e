"""The exact answer cache: one Redis string per (tenant, request), for deterministic requests only.

Key ``flashsight:answer:v1:{scope}:{sha256 of the canonical request}``:

- ``scope`` is the caller's API-key identity (a prefix of the key's SHA-256, never the key)
  or ``open`` when the gateway runs without keys, so no answer ever crosses tenants;
- the canonical request is the sorted-keys JSON of every field the caller sent (sampling
  fields, ``response_format``, ``tools``, ``tool_choice``, ``parallel_tool_calls``, the
  thinking switch; fields the gateway ignores are dropped when parsed) minus
  those that cannot change the answer's text (:data:`NON_SEMANTIC_FIELDS`), the messages
  with each image replaced by the SHA-256 of its *normalised* bytes (assistant ``tool_calls``
  and ``tool`` results included as sent), and the route taken.

Only deterministic requests are looked up or stored: ``temperature`` 0 or a fixed ``seed``
(the OpenAI default temperature is 1). ``Cache-Control: no-cache`` skips the lookup,
``no-store`` the write. Only whole answers are stored (finish_reason ``stop``, ``length``
(the same ``max_tokens`` is in the key, so a cut answer is cut the same way) or
``tool_calls``: a hit replays the calls, with the ids they had);
degraded, shed and holding answers and errors never are (:class:`gateway.answer.service`
decides). Redis trouble never fails a request: the lookup says ``unavailable``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flashsight_common.schemas import ImagePart
from redis.asyncio import Redis

from gateway.store.redis_guard import RedisGuard, RedisUnavailableError

if TYPE_CHECKING:
    from gateway.config import AnswerSettings
    from gateway.images.normalise import NormalisedImage
    from gateway.schemas import AnswerCacheStatus, GatewayChatRequest

logger = logging.getLogger(__name__)

KEY_PREFIX = "flashsight:answer"
KEY_VERSION = "2"
"""Bump when the key's recipe or the entry's shape changes: old entries are then never read."""

OPEN_SCOPE = "open"

NON_SEMANTIC_FIELDS = frozenset(
    {"messages", "stream", "stream_options", "model", "route", "flashsight", "user"}
)
"""Left out of the key: ``messages`` is added image-digested; ``stream`` / ``stream_options``
change only the framing (a hit replays either way); ``model``, ``route`` and ``flashsight``
only force the route, which is in the key itself; ``user`` is an end-user tag."""

STORED_FINISH_REASONS = frozenset({"stop", "length", "tool_calls"})


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """What a hit replays: the answer's text or tool calls, how it ended, and the models that wrote it."""

    content: str | None
    finish_reason: str
    model: str
    reasoning_content: str | None = None
    usage: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    """Whole calls, ``{"id", "type", "function": {"name", "arguments"}}``."""
    models: dict[str, str | None] = field(default_factory=dict)
    """``flashsight.models`` of the original answer (vision / reasoner)."""


@dataclass(frozen=True, slots=True)
class CachePlan:
    """What the cache may do for one request, decided from the request and its headers."""

    status: AnswerCacheStatus | None
    """``bypass`` when nothing is looked up, else None until the lookup says hit/miss/unavailable."""
    lookup: bool
    store: bool
    scope: str
    fields: dict[str, Any]


BYPASS = CachePlan(status="bypass", lookup=False, store=False, scope=OPEN_SCOPE, fields={})


def is_deterministic(request: GatewayChatRequest) -> bool:
    """Temperature 0 or a fixed seed: the only requests whose answer may be replayed."""
    return request.temperature == 0 or request.seed is not None


def cache_directives(header: str | None) -> frozenset[str]:
    """``Cache-Control`` as a set of lower-case directives (``no-cache``, ``no-store``, …)."""
    if not header:
        return frozenset()
    return frozenset(d.split("=", 1)[0].strip().lower() for d in header.split(",") if d.strip())


def request_fields(request: GatewayChatRequest) -> dict[str, Any]:
    """The caller's fields that shape the answer (everything but :data:`NON_SEMANTIC_FIELDS`).

    ``max_tokens`` and ``max_completion_tokens`` are two spellings of one limit (the SDK's
    callers send the first, LangChain's ``ChatOpenAI`` the second): the key holds the limit
    the stages apply, as ``max_tokens``, so both spellings of one question share an entry.
    """
    fields = request.model_dump(
        mode="json", exclude_none=True, exclude={*NON_SEMANTIC_FIELDS, "max_completion_tokens"}
    )
    if request.max_tokens is not None or request.max_completion_tokens is not None:
        fields["max_tokens"] = request.token_limit()
    return fields


def digest_messages(request: GatewayChatRequest, images: list[NormalisedImage]) -> list[dict[str, Any]]:
    """The admitted messages with each image part (in order) replaced by its normalised SHA-256."""
    shas = iter(image.sha256 for image in images)
    messages = []
    for message in request.messages:
        dumped = message.model_dump(mode="json", exclude_none=True)
        if isinstance(message.content, list):
            dumped["content"] = [
                {"type": "image_sha256", "sha256": next(shas), "detail": part.image_url.detail}
                if isinstance(part, ImagePart)
                else part.model_dump(mode="json", exclude_none=True)
                for part in message.content
            ]
        messages.append(dumped)
    return messages


def answer_key(
    *,
    scope: str,
    fields: dict[str, Any],
    messages: list[dict[str, Any]],
    route: str,
    prefix: str = KEY_PREFIX,
) -> str:
    """The Redis key: versioned prefix, tenant scope, SHA-256 of the canonical JSON of the rest."""
    canonical = json.dumps(
        {"fields": fields, "messages": messages, "route": route},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{prefix}:v{KEY_VERSION}:{scope}:{digest}"


class AnswerCache:
    """Plans, looks up and stores answers; one per app, behind the shared Redis guard."""

    def __init__(self, guard: RedisGuard, *, enabled: bool, ttl_s: int, prefix: str = KEY_PREFIX) -> None:
        self.guard = guard
        self.enabled = enabled
        self.ttl_s = ttl_s
        self.prefix = prefix

    @classmethod
    def from_settings(cls, answer: AnswerSettings, guard: RedisGuard) -> AnswerCache:
        """On with ``GATEWAY_ANSWER_CACHE``; entries kept ``GATEWAY_ANSWER_CACHE_TTL_S``."""
        return cls(guard, enabled=answer.answer_cache, ttl_s=answer.answer_cache_ttl_s)

    def plan(self, request: GatewayChatRequest, *, scope: str | None, cache_control: str | None) -> CachePlan:
        """What to do for this request: bypass (off, not deterministic, no scope), or look up / store.

        ``scope`` is the caller identity from the auth middleware (``key:…`` when keys are
        on); None (a caller the middleware did not see) bypasses rather than guess a tenant.
        """
        if not self.enabled or scope is None or not is_deterministic(request):
            return BYPASS
        directives = cache_directives(cache_control)
        lookup, store = "no-cache" not in directives, "no-store" not in directives
        if not lookup and not store:
            return BYPASS
        tenant = scope if scope.startswith("key:") else OPEN_SCOPE
        return CachePlan(
            status=None if lookup else "bypass",
            lookup=lookup,
            store=store,
            scope=tenant,
            fields=request_fields(request),
        )

    def key(
        self, plan: CachePlan, request: GatewayChatRequest, images: list[NormalisedImage], route: str
    ) -> str:
        return answer_key(
            scope=plan.scope,
            fields=plan.fields,
            messages=digest_messages(request, images),
            route=route,
            prefix=self.prefix,
        )

    async def get(self, key: str) -> CachedAnswer | Literal["unavailable"] | None:
        """The cached answer, None on a miss, ``"unavailable"`` when Redis is down or skipped."""

        async def read(client: Redis) -> bytes | str | None:
            return await client.get(key)

        try:
            raw = await self.guard.run(read)
        except RedisUnavailableError:
            return "unavailable"
        return _decode(raw)

    async def put(self, key: str, answer: CachedAnswer) -> bool:
        """Store an answer for ``ttl_s``; False when Redis is unavailable (the answer is still sent)."""
        value = json.dumps(asdict(answer), ensure_ascii=False)

        async def write(client: Redis) -> object:
            return await client.set(key, value, ex=self.ttl_s)

        try:
            await self.guard.run(write)
        except RedisUnavailableError:
            return False
        return True


def storable(answer: CachedAnswer | None) -> bool:
    """A whole answer (not cut by a failure): text, or the tool calls it ended with.

    Calls are kept only in an answer that ended with them (``tool_calls``): a stream cut by
    ``max_tokens`` inside a call has sent that call in part, which an unstreamed replay would
    present as a call (unstreamed, a cut call is text: docs/api.md).
    """
    if answer is None or answer.finish_reason not in STORED_FINISH_REASONS:
        return False
    if answer.tool_calls or answer.finish_reason == "tool_calls":
        return bool(answer.tool_calls) and answer.finish_reason == "tool_calls"
    return answer.content is not None


def _decode(raw: bytes | str | None) -> CachedAnswer | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        content = data["content"]
        return CachedAnswer(
            content=None if content is None else str(content),
            finish_reason=str(data["finish_reason"]),
            model=str(data["model"]),
            reasoning_content=data.get("reasoning_content"),
            usage=data.get("usage"),
            tool_calls=[dict(call) for call in data["tool_calls"]] if data.get("tool_calls") else None,
            models=dict(data.get("models") or {}),
        )
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring unreadable answer cache entry")  # a miss; it will be overwritten
        return None
