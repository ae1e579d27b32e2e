"""Settings every model service shares; each service subclasses them with its own env prefix.

A service sets ``model_config = SettingsConfigDict(env_prefix="VISION_")`` and its own
defaults (port, backend, ...). Values are validated when the settings are built, so a
bad environment fails at start-up with a message naming the variable and what is accepted.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
DType = Literal["auto", "float32", "bfloat16", "float16"]

_RANGES: dict[str, tuple[float, float]] = {
    "port": (1, 65535),
    "max_batch_size": (1, 1024),
    "max_wait_ms": (0, 10_000),
    "max_queue": (1, 1_000_000),
    "default_max_tokens": (1, 1_000_000),
    "max_request_bytes": (1024, 1 << 34),
    # the GPU decode fast path (modelserver.cuda_graphs)
    "kv_cache_gib": (0.001, 4096),
    "kv_cache_max_len": (2, 1 << 22),
}


class ModelServerSettings(BaseSettings):
    """Host, backend, model and batching settings of one model service."""

    model_config = SettingsConfigDict(env_prefix="MODELSERVER_", extra="ignore", validate_default=True)

    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "default"
    """Key into the service's backend dispatch table."""
    model: str | None = None
    """A local path or a Hugging Face id; backends that embed their model ignore it."""
    served_model_name: str | None = None
    """Overrides the model id reported in responses and accepted in requests."""
    device: str = "auto"
    dtype: DType = "auto"
    max_batch_size: int = 4
    max_wait_ms: float = 10
    max_queue: int = 64
    default_max_tokens: int = 512
    max_request_bytes: int = 32 * 1024 * 1024
    log_level: LogLevel = "info"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (docker compose sets it); ``text``: for a terminal."""

    # -- the GPU decode fast path (modelserver.static_kv, modelserver.cuda_graphs) --------
    static_kv: Literal["auto", "on", "off"] = "auto"
    """Decode in a preallocated KV cache of ``max_batch_size`` slots: ``auto`` on CUDA only."""
    cuda_graphs: bool = True
    """On CUDA, capture the static-cache decode step in CUDA graphs (off: eager steps)."""
    kv_cache_gib: float = 8.0
    """The static cache's budget: slots × row length × bytes per token stays under it."""
    kv_cache_max_len: int = 8192
    """Tokens per row (prompt plus answer) in the static cache, lowered to fit the budget and context."""
    decode_step: Literal["auto", "compiled", "fused", "transformers"] = "auto"
    """The static-cache step (modelserver.fused_step): ``auto`` is ``compiled`` on CUDA, ``fused`` on CPU."""

    @model_validator(mode="after")
    def _check_ranges(self) -> ModelServerSettings:
        # A model validator rather than Field(ge=...): a subclass that overrides a default
        # (``port: int = 8081``) would silently drop Field constraints, not this check.
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, got {value}")
        if not self.backend.strip():
            raise ValueError("backend must name an entry of the service's backend table")
        return self

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DEVICE_RE.match(value):
            raise ValueError(f"device {value!r} is not accepted; use auto, cpu, cuda or cuda:N")
        return value

    @field_validator("log_level", "log_format", "dtype", "static_kv", "decode_step", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("model", "served_model_name", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # An empty env var (VISION_MODEL=) means "not set", not a model called "".
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0
