"""Settings every model service shares; each service subclasses them with its own env prefix.

A service sets ``model_config = SettingsConfigDict(env_prefix="VISION_")`` and its own
defaults (port, backend, ...). Values are validated when the settings are built, so a
bad environment fails at start-up with a message naming the variable and what is accepted.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
DType = Literal["auto", "float32", "bfloat16", "float16"]


class ModelServerSettings(BaseSettings):
    """Host, backend, model and batching settings of one model service."""

    model_config = SettingsConfigDict(env_prefix="MODELSERVER_", extra="ignore", validate_default=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    backend: Annotated[str, Field(min_length=1)] = "default"
    """Key into the service's backend dispatch table."""
    model: str | None = None
    """A local path or a Hugging Face id; backends that embed their model ignore it."""
    served_model_name: str | None = None
    """Overrides the model id reported in responses and accepted in requests."""
    device: str = "auto"
    dtype: DType = "auto"
    max_batch_size: Annotated[int, Field(ge=1, le=1024)] = 4
    max_wait_ms: Annotated[float, Field(ge=0, le=10_000)] = 10
    max_queue: Annotated[int, Field(ge=1)] = 64
    default_max_tokens: Annotated[int, Field(ge=1)] = 512
    max_request_bytes: Annotated[int, Field(ge=1024)] = 32 * 1024 * 1024
    log_level: LogLevel = "info"

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DEVICE_RE.match(value):
            raise ValueError(f"device {value!r} is not accepted; use auto, cpu, cuda or cuda:N")
        return value

    @field_validator("log_level", "dtype", mode="before")
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
