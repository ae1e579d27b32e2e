"""The vision service's settings: the shared model-server settings under ``VISION_``."""

from __future__ import annotations

from typing import Annotated

from modelserver.config import ModelServerSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict


class VisionSettings(ModelServerSettings):
    """Settings of the vision service (env ``VISION_*``); defaults run ``ocr-lite`` on :8081."""

    model_config = SettingsConfigDict(env_prefix="VISION_", extra="ignore", validate_default=True)

    # Ranges (port, batch size, ...) and a blank backend are checked by the base class.
    port: int = 8081
    backend: str = "ocr-lite"
    """Key into :data:`vision.backends.BACKENDS`."""

    # glm backend (vision.backends.glm): pixels per image after resizing. GLM-4.6V spends
    # about width × height / 784 tokens on an image, so 1 MP ≈ 1300 tokens.
    image_min_pixels: Annotated[int, Field(ge=784)] = 112 * 112
    image_max_pixels: Annotated[int, Field(ge=784)] = 1024 * 1024
    enable_thinking: bool = False
    """Default for requests that do not set ``enable_thinking`` (GLM ``<think>`` mode)."""

    @model_validator(mode="after")
    def _check_pixel_budget(self) -> VisionSettings:
        if self.image_min_pixels > self.image_max_pixels:
            raise ValueError(
                f"image_min_pixels ({self.image_min_pixels}) is above image_max_pixels "
                f"({self.image_max_pixels}): no image size satisfies both"
            )
        return self
