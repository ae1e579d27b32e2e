"""The gateway's wire models: its chat request, the ``flashsight`` metadata object, the seed adapters.

The chat request is OpenAI's (``flashsight_common.schemas.ChatCompletionRequest``, tool
calling and the thinking switch included) plus two optional ways to force the route: a
top-level ``route`` field or ``flashsight.route``.
Every answer carries a :class:`FlashSightMeta` (in the body, the last stream chunk, and
``X-FlashSight-*`` headers).
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal
from urllib.parse import quote

from flashsight_common.schemas import ChatCompletionRequest
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gateway.answer.prompt_budget import check_counts

RouteName = Literal["direct", "cascade"]
CacheStatus = Literal["hit", "miss", "partial", "unavailable"]
AnswerCacheStatus = Literal["hit", "miss", "bypass", "unavailable"]
DegradedReason = Literal[
    "reasoner_unavailable",
    "reasoner_timeout",
    "reasoner_error",
    "reasoner_failed_mid_stream",
    "reasoner_circuit_open",
    "overload_max_tokens",
    "overload_greedy",
    "overload_holding_reply",
]

Stage = Literal["admission", "vision", "reasoner"]

DEGRADED_NOTICE = "当前仅提供图像描述 / image description only"


def _elapsed_ms(since: float) -> float:
    # Milliseconds since a time.perf_counter() value, rounded for humans.
    return round((time.perf_counter() - since) * 1000, 1)


class RouteOptions(BaseModel):
    """The request's optional ``flashsight`` object."""

    model_config = ConfigDict(extra="forbid")

    route: RouteName | None = None


class GatewayChatRequest(ChatCompletionRequest):
    """``POST /v1/chat/completions``: OpenAI's request plus optional route forcing."""

    route: RouteName | None = None
    flashsight: RouteOptions | None = None

    @field_validator("messages", mode="before")
    @classmethod
    def _bound_counts(cls, value: Any, info: ValidationInfo) -> Any:
        # Before any message object is built: 600,000 empty messages must cost a count, not 600,000 objects.
        limits = (info.context or {}).get("prompt_limits")
        if limits is not None:
            check_counts(value, max_messages=limits["max_messages"], max_parts=limits["max_parts"])
        return value

    @model_validator(mode="after")
    def _check_content_present(self) -> GatewayChatRequest:
        # OpenAI allows null content only on assistant turns (tool calls); anywhere else it is a bug.
        for i, message in enumerate(self.messages):
            if message.content is None and message.role != "assistant":
                raise ValueError(
                    f"messages[{i}].content is null; a {message.role} message needs a string or content parts"
                )
        return self

    @model_validator(mode="after")
    def _check_tools_alone(self) -> GatewayChatRequest:
        # The model services refuse both constraints at once; refused here, before the reasoner's
        # 400 could turn into a degraded answer.
        fmt = self.response_format
        if self.calls_tools() and fmt is not None and fmt.type != "text":
            raise ValueError(
                "response_format and tools cannot be combined (both constrain the answer's syntax); "
                "send tool_choice 'none' for a structured answer, or drop response_format"
            )
        return self

    def route_forces(self) -> dict[str, str | None]:
        """Where the body forces a route → the route (``route`` and ``flashsight.route``)."""
        return {"route": self.route, "flashsight.route": self.flashsight.route if self.flashsight else None}

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters the caller set, passed on to whichever model answers."""
        keys = (
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "top_p",
            "stop",
            "seed",
            "response_format",
        )
        return self.model_dump(include=set(keys), exclude_none=True)

    def tool_fields(self) -> dict[str, Any]:
        """``tools``, ``tool_choice``, ``parallel_tool_calls`` as sent, for the stage that calls tools."""
        return self.model_dump(
            mode="json", include={"tools", "tool_choice", "parallel_tool_calls"}, exclude_none=True
        )

    def thinking(self) -> dict[str, Any]:
        """The caller's thinking switch, spelt as vLLM and SGLang take it too (``chat_template_kwargs``)."""
        enabled = self.thinking_requested()
        return {} if enabled is None else {"chat_template_kwargs": {"enable_thinking": enabled}}


class ModelsUsed(BaseModel):
    """The models that really produced the answer."""

    vision: str | None = None
    reasoner: str | None = None


class Timings(BaseModel):
    """Milliseconds spent per stage (None: the stage did not run)."""

    admission: float | None = None
    caption: float | None = None
    vision: float | None = None
    reasoner: float | None = None
    total: float | None = None


class FlashSightMeta(BaseModel):
    """What the gateway did with a request: route, cache, degradation, models, timings."""

    route: RouteName
    route_reason: Literal["keyword", "forced", "default", "no_image", "reasoner_language", "tools"]
    matched_keyword: str | None = None
    caption_cache: CacheStatus | None = None
    answer_cache: AnswerCacheStatus | None = None
    """The exact answer cache (gateway.store.answer_cache): hit, miss, bypass (not looked up), unavailable."""
    degraded: bool = False
    degraded_reason: DegradedReason | None = None
    notice: str | None = None
    load_shedding: list[str] = Field(default_factory=list)
    """Overload steps applied to this request (see gateway.answer.shedding)."""
    safety: dict[str, Any] | None = None
    """The safety pre-filter's findings, when it is on (see gateway.images.safety)."""
    models: ModelsUsed = Field(default_factory=ModelsUsed)
    timings_ms: Timings = Field(default_factory=Timings)
    images: list[str] = Field(default_factory=list)
    request_id: str | None = None

    # --- the only ways the request service changes the metadata ---------------------------

    def record_stage(self, stage: Stage, *, started: float) -> None:
        """Time a stage (``vision`` / ``reasoner`` / ``admission``) from ``started`` (perf_counter) to now."""
        setattr(self.timings_ms, stage, _elapsed_ms(started))

    def record_model(self, stage: Literal["vision", "reasoner"], model: object) -> None:
        """The model that really answered for ``stage`` (ignored when the upstream named none)."""
        if model:
            setattr(self.models, stage, str(model))

    def record_captions(
        self, *, cache: CacheStatus | None, vision_model: str | None, elapsed_ms: float
    ) -> None:
        """The cascade's caption step: cache outcome, captioning model, time."""
        self.caption_cache = cache
        self.models.vision = vision_model
        self.timings_ms.caption = round(elapsed_ms, 1)

    def record_answer_cache(
        self, status: AnswerCacheStatus, models: dict[str, str | None] | None = None
    ) -> None:
        """The answer cache's outcome; on a hit, the models that wrote the replayed answer."""
        self.answer_cache = status
        if models:
            self.models = ModelsUsed.model_validate(models)

    def mark_degraded(self, reason: DegradedReason) -> None:
        """Vision answers alone (the reasoner could not), and why; the notice tells the reader."""
        self.degraded = True
        self.degraded_reason = reason
        self.notice = DEGRADED_NOTICE

    def mark_language_gated(self, notice: str) -> None:
        """Vision answers directly: the reasoner does not handle the question's or image's language.

        Not degraded: it is a full answer, and the notice (metadata only) says why.
        """
        self.route = "direct"
        self.route_reason = "reasoner_language"
        self.notice = notice

    def mark_shed(self, steps: list[DegradedReason]) -> None:
        """The overload steps applied; the most severe names the degradation unless one is known."""
        if not steps:
            return
        self.load_shedding = list(steps)
        self.degraded = True
        self.degraded_reason = self.degraded_reason or steps[-1]

    def finish(self, *, started: float) -> FlashSightMeta:
        """The metadata with the total time (since ``started``, perf_counter) filled in."""
        self.timings_ms.total = _elapsed_ms(started)
        return self

    # --- rendering ------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """``X-FlashSight-*`` response headers (non-ASCII percent-encoded as UTF-8)."""
        timings = self.timings_ms.model_dump(exclude_none=True)
        return {
            "X-FlashSight-Route": self.route,
            "X-FlashSight-Keyword": quote(self.matched_keyword or "", safe=""),
            "X-FlashSight-Cache": self.caption_cache or "none",
            "X-FlashSight-Answer-Cache": self.answer_cache or "none",
            "X-FlashSight-Degraded": (self.degraded_reason or "true") if self.degraded else "false",
            "X-FlashSight-Models": json.dumps(self.models.model_dump(), separators=(",", ":")),
            "X-FlashSight-Timings": ",".join(f"{k}={v:g}" for k, v in timings.items()),
        }


# --- seed adapters ---------------------------------------------------------------------------


class InferRequest(BaseModel):
    """``POST /infer``: one image URL (data: or https://) and a prompt."""

    image_url: str = Field(min_length=1)
    prompt: str = Field(min_length=1)


class InferResponse(BaseModel):
    """``POST /infer`` answer; ``confidence`` is the vision model's, when it gives one."""

    text: str
    confidence: float | None = None
    route: RouteName
    model: str
    flashsight: FlashSightMeta


class CaptionResponse(BaseModel):
    """``POST /caption`` answer."""

    caption: str
    model: str
    cache: CacheStatus


class ChatSeedResponse(BaseModel):
    """``POST /chat`` answer (``answer`` and ``text`` hold the same string: both seed spellings)."""

    answer: str
    text: str
    model: str
    flashsight: FlashSightMeta


class MultimodalResponse(BaseModel):
    """``POST /v1/multimodal/completion`` answer."""

    text: str
    model: str
    flashsight: FlashSightMeta
