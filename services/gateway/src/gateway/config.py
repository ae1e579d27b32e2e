"""The gateway's settings, validated when built, grouped into one section per concern.

Built once in ``__main__`` from the environment and passed to ``create_app``, so tests
build them in code. A bad value fails at start-up with a message naming the variable.

Each section (``server``, ``upstreams``, ``redis``, ``answer``, ``images``, ``auth``,
``shedding``, ``logging``) is what one component builds itself from; the environment
variable of a field is still the flat ``GATEWAY_<FIELD>`` (``GATEWAY_VISION_URL``, not
``GATEWAY_UPSTREAMS__VISION_URL``), so the sections are no user-visible change. Code and
tests may pass fields flat too: ``GatewaySettings(vision_url=...)`` lands in ``upstreams``.
Redis is the one exception to the prefix: ``REDIS_URL`` is what every other tool and the
compose file use, so it is read too (``GATEWAY_REDIS_URL`` wins when both are set).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
LogFormat = Literal["text", "json"]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]

ENV_PREFIX = "GATEWAY_"
_MB = 1024 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_default=True, frozen=True)


class ServerSettings(_Section):
    """Where the gateway listens and how it treats client connections."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(ge=1024)] = 25 * _MB
    keepalive_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Idle client keep-alive connections are closed after this."""
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 16 * 1024
    """Largest request line + headers buffered per connection (either parser)."""
    head_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    """A new connection (and each request from its first byte) must send its whole head in this time."""
    body_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """A request body must be complete within this time of its head (else 408)."""
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 512
    """Open client connections; more are answered 503 and closed. Keep below ``ulimit -n``
    minus the upstream pools (2 x ``upstream_max_connections``) and Redis."""
    http_parser: Literal["h11", "httptools"] = "httptools"
    """Both enforce ``max_header_bytes``; httptools (C) serves ~25% more requests/s than h11 (Python),
    and only httptools has the head/body timeouts and the connection cap."""
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    """Gateway processes on the one port. 1 measured best on 2 cores shared with the models;
    more pay only with idle cores, and each keeps its own /metrics and circuit state."""


class UpstreamSettings(_Section):
    """Where vision and the reasoner are, how long to wait for them, when to stop calling them."""

    vision_url: str = "http://127.0.0.1:8081"
    reasoner_url: str = "http://127.0.0.1:9000"
    vision_tools: Literal["auto", "on", "off"] = "auto"
    """Does vision call tools? ``auto``: its ``/readyz`` says (``calls_tools``; FlashSight's
    ``glm`` backend yes, ``ocr-lite`` no; a server that does not say, e.g. vLLM, counts as no).
    A tools request with images goes direct when it does, else through the cascade."""
    vision_timeout_s: PositiveSeconds = 60.0
    reasoner_timeout_s: PositiveSeconds = 30.0
    reasoner_first_token_timeout_s: PositiveSeconds = 10.0
    """Streaming: no first token from the reasoner by then → answer from vision instead. Not for
    a request that must call a tool (vision cannot stand in): it waits ``reasoner_timeout_s``."""
    stream_idle_timeout_s: PositiveSeconds = 15.0
    """Streaming: no event from an upstream for this long after the first token → end degraded."""
    connect_timeout_s: PositiveSeconds = 3.0
    reasoner_failure_threshold: Annotated[int, Field(ge=1)] = 3
    """Consecutive reasoner failures that open its circuit (answers go to vision meanwhile)."""
    reasoner_circuit_open_s: Annotated[float, Field(ge=0)] = 5.0
    upstream_max_connections: Annotated[int, Field(ge=1, le=10_000)] = 256
    """Pooled keep-alive connections per upstream (vision, reasoner)."""
    upstream_keepalive_s: Annotated[float, Field(gt=0)] = 30.0
    """Idle pooled connections are closed after this; shorter than the model servers' 75 s."""
    vision_failure_threshold: Annotated[int, Field(ge=1)] = 5
    """Consecutive vision failures (5xx, timeouts, unreachable; not 4xx) that open its circuit."""
    vision_circuit_open_s: Annotated[float, Field(ge=0)] = 5.0
    """While vision's circuit is open, answers are a 503 with Retry-After at once."""

    @field_validator("vision_url", "reasoner_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// base URL (e.g. http://127.0.0.1:8081)")
        return value


class RedisSettings(_Section):
    """The Redis holding the caption cache and the rate-limit windows."""

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", json_schema_extra={"env": ["GATEWAY_REDIS_URL", "REDIS_URL"]}
    )
    redis_timeout_s: Annotated[float, Field(gt=0, le=10)] = 0.25
    """Socket timeout of every Redis call: a slow Redis must not slow answers down."""
    redis_retry_after_s: Annotated[float, Field(ge=0, le=300)] = 5.0
    """After a Redis failure, skip Redis for this long (answers flow uncached meanwhile)."""

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{value!r} is not a redis:// URL (e.g. redis://127.0.0.1:6379/0)")
        return value


class AnswerSettings(_Section):
    """How a chat request is answered: the keyword table, captions, the text cap and the deadline."""

    keywords_file: Path | None = None
    """A TOML keyword table replacing the packaged one (see ``gateway/keywords.toml``)."""
    caption_prompt_version: str = "1"
    caption_ttl_seconds: Annotated[int, Field(ge=1)] = 7 * 24 * 3600
    caption_max_tokens: Annotated[int, Field(ge=16, le=4096)] = 256
    reasoner_languages: tuple[str, ...] = ("en",)
    """Languages the reasoner reads and writes well (zh, en; * = any), comma-separated. A cascade
    question, or an image's text, in another language is answered by vision directly
    (route_reason reasoner_language). Default: the embedded SmolLM2-135M's (English only);
    GLM-4 chat: zh,en."""
    request_deadline_s: PositiveSeconds = 120.0
    """Overall budget of one request up to its answer (a stream: up to its first byte) → 504."""
    max_text_chars: Annotated[int, Field(ge=100)] = 32_000
    """Characters of prompt accepted in one chat request: all messages' text plus 16 per message
    for the chat template's markers."""
    max_messages: Annotated[int, Field(ge=1, le=100_000)] = 256
    """Messages accepted in one chat request (counted before they are parsed)."""
    max_content_parts: Annotated[int, Field(ge=1, le=100_000)] = 64
    """Content parts (text and image_url, all messages together) accepted in one chat request."""
    answer_cache: bool = False
    """Exact answer cache in Redis for deterministic requests (temperature 0 or a seed), per API key."""
    answer_cache_ttl_s: Annotated[int, Field(ge=1)] = 3600
    """How long a cached answer lives in Redis."""

    @field_validator("keywords_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("reasoner_languages", mode="before")
    @classmethod
    def _split_languages(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(lang.strip().lower() for lang in value.split(",") if lang.strip())
        if isinstance(value, tuple | list):
            from gateway.answer.languages import LANGUAGES

            unknown = [lang for lang in value if lang not in LANGUAGES]
            if unknown or not value:
                raise ValueError(f"unknown reasoner language(s) {unknown}; use a comma-separated "
                                 f"list of {', '.join(LANGUAGES)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> AnswerSettings:
        from gateway.answer.prompts import CAPTION_PROMPTS  # the known versions live beside the prompts

        if self.caption_prompt_version not in CAPTION_PROMPTS:
            known = ", ".join(sorted(CAPTION_PROMPTS))
            raise ValueError(
                f"caption_prompt_version {self.caption_prompt_version!r} is unknown; known: {known}"
            )
        if self.keywords_file is not None and not self.keywords_file.is_file():
            raise ValueError(f"keywords_file {str(self.keywords_file)!r} does not exist or is not a file")
        return self


class ImageSettings(_Section):
    """What images the gateway admits, where it may fetch them from, and the safety pre-filter."""

    max_image_bytes: Annotated[int, Field(ge=1024)] = 10 * _MB
    max_pixels: Annotated[int, Field(ge=1)] = 40_000_000
    max_side: Annotated[int, Field(ge=32, le=8192)] = 1024
    max_images_per_request: Annotated[int, Field(ge=1, le=64)] = 4
    max_decoded_bytes_per_image: Annotated[int, Field(ge=1024 * 1024)] = 160 * _MB
    """Decoded size (pixels x channels x bytes per channel) of one image; 160 MB: 40 M px of 8-bit RGBA."""
    max_decoded_bytes_per_request: Annotated[int, Field(ge=1024 * 1024)] = 256 * _MB
    """Decoded size of all images of one request together (checked from their headers, before decoding)."""
    decode_workers: Annotated[int, Field(ge=1, le=64)] = 2
    """Threads decoding images (all requests share them): how many large images are in memory at once."""
    allow_http_images: bool = False
    image_domain_allowlist: tuple[str, ...] = ()
    """Hosts image URLs may point at (empty: any public host). Comma-separated in the env."""
    image_fetch_timeout_s: PositiveSeconds = 10.0
    safety_filter: Literal["off", "flag", "reject"] = "off"
    """NudeNet pre-filter: off; flag (answer, mark flashsight.safety); reject (400 before any model)."""
    safety_threshold: Annotated[float, Field(gt=0, le=1)] = 0.6
    """NudeNet score at or above which an explicit-class detection counts."""

    @field_validator("image_domain_allowlist", mode="before")
    @classmethod
    def _split_domains(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(d.strip().lower() for d in value.split(",") if d.strip())
        return value


class AuthSettings(_Section):
    """Who may call the gateway, and how often."""

    api_keys: tuple[str, ...] = ()
    """Accepted API keys, comma-separated (kept only as SHA-256). None here or in the file: open."""
    api_keys_file: Path | None = None
    """A file of API keys, one per line, ``#`` comments; merged with ``api_keys``."""
    rate_limit_per_minute: Annotated[int, Field(ge=0)] = 0
    """Requests per key (per client address when open) in any 60 s, in Redis; 0 = no limit."""
    rate_limit_fail_open: bool = True
    """Redis down: true → requests pass unlimited (warning + metric); false → 503."""
    auth_failures_per_minute: Annotated[int, Field(ge=0)] = 20
    """Requests with a missing or wrong key per client address in any 60 s before 429s (0 = off)."""
    ops_public: bool = False
    """With keys set: false → /metrics needs a key and /readyz shows only its status without one;
    true → both public (e.g. when only a private network reaches the gateway)."""

    @property
    def required(self) -> bool:
        """Whether callers must present a key (some key is configured)."""
        return bool(self.api_keys or self.api_keys_file)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @field_validator("api_keys_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check(self) -> AuthSettings:
        if self.api_keys_file is not None and not self.api_keys_file.is_file():
            raise ValueError(f"api_keys_file {str(self.api_keys_file)!r} does not exist or is not a file")
        return self


class ShedSettings(_Section):
    """Overload: the in-flight thresholds above which answers get cheaper (0 = step off)."""

    shed_max_tokens_above: Annotated[int, Field(ge=0)] = 32
    """In-flight chat requests above which max_tokens is capped at ``shed_max_tokens`` (0 = off)."""
    shed_max_tokens: Annotated[int, Field(ge=1)] = 256
    shed_greedy_above: Annotated[int, Field(ge=0)] = 64
    """In-flight chat requests above which decoding is forced greedy (temperature 0; 0 = off)."""
    shed_hold_above: Annotated[int, Field(ge=0)] = 0
    """In-flight chat requests above which the holding reply is sent instead (opt-in; 0 = off)."""
    holding_reply: str = "服务繁忙，请稍后重试 / The service is busy; please retry in a moment."


class LogSettings(_Section):
    """What the gateway logs and how."""

    log_level: LogLevel = "info"
    log_format: LogFormat = "text"
    """``json``: one JSON object per line (docker compose sets it); ``text``: for a terminal."""
    log_prompts: bool = False
    """Put the latest user text (first 500 characters) in access lines; off: prompts never logged."""

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class GatewaySettings(BaseSettings):
    """Every gateway setting, one section per concern; each variable is ``GATEWAY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    upstreams: UpstreamSettings = Field(default_factory=UpstreamSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    shedding: ShedSettings = Field(default_factory=ShedSettings)
    logging: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments first, then the environment under the flat names (see env_fields).
        return init_settings, _FlatEnvSource(settings_cls)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_fields(cls, data: Any) -> Any:
        """``vision_url=...`` → ``upstreams={"vision_url": ...}`` (a flat value wins over the env's)."""
        if not isinstance(data, dict):
            return data
        nested: dict[str, Any] = {}
        for key, value in data.items():  # whole sections (the environment's, or a caller's)
            if key in _SECTIONS:
                nested[key] = value.model_dump() if isinstance(value, BaseModel) else dict(value)
        for key, value in data.items():  # flat fields; unknown keys are ignored, as before
            section = _SECTION_OF.get(key)
            if section is not None:
                nested.setdefault(section, {})[key] = value
        return nested

    @model_validator(mode="after")
    def _check_consistency(self) -> GatewaySettings:
        if self.images.max_image_bytes > self.server.max_body_bytes:
            raise ValueError("max_image_bytes must not exceed max_body_bytes")
        return self

    @classmethod
    def env_fields(cls) -> list[EnvField]:
        """Every field with the section it lives in and the variable names that set it."""
        return [
            EnvField(section, name, _env_names(name, info), info.get_default(call_default_factory=True))
            for section, model in _SECTIONS.items()
            for name, info in model.model_fields.items()
        ]


@dataclass(frozen=True, slots=True)
class EnvField:
    """One setting as the environment sees it."""

    section: str
    field: str
    names: tuple[str, ...]
    """Upper-case variable names, any of which sets the field (the first wins)."""
    default: Any


def _env_names(name: str, info: FieldInfo) -> tuple[str, ...]:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("env"), list):
        return tuple(str(n).upper() for n in extra["env"])  # type: ignore[union-attr]
    return (f"{ENV_PREFIX}{name}".upper(),)


class _FlatEnvSource(PydanticBaseSettingsSource):
    """Reads each section's fields from their flat variables (``GATEWAY_VISION_URL``), any case."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole environment at once

    def __call__(self) -> dict[str, Any]:
        env = {key.upper(): value for key, value in os.environ.items()}
        found: dict[str, dict[str, str]] = {}
        for field in GatewaySettings.env_fields():
            value = next((env[n] for n in field.names if n in env), None)
            if value is not None:
                found.setdefault(field.section, {})[field.field] = value
        return found


_SECTIONS: dict[str, type[_Section]] = {
    "server": ServerSettings,
    "upstreams": UpstreamSettings,
    "redis": RedisSettings,
    "answer": AnswerSettings,
    "images": ImageSettings,
    "auth": AuthSettings,
    "shedding": ShedSettings,
    "logging": LogSettings,
}
_SECTION_OF: dict[str, str] = {
    name: section for section, model in _SECTIONS.items() for name in model.model_fields
}
