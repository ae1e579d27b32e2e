"""The vision service's backend dispatch table: ``VISION_BACKEND`` names one entry.

Each entry is a factory ``(settings) -> Backend`` (see :mod:`modelserver.backend`);
factories import their heavy dependencies lazily so that listing the table is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from modelserver.backend import Backend
from modelserver.config import ModelServerSettings


def _ocr_lite(settings: ModelServerSettings) -> Backend:
    from vision.backends.ocr_lite import OcrLiteBackend

    return OcrLiteBackend(settings)


def _glm(settings: ModelServerSettings) -> Backend:
    from vision.backends.glm import GlmBackend

    return GlmBackend(settings)  # type: ignore[arg-type]  # built from VisionSettings


BACKENDS: Mapping[str, Callable[[ModelServerSettings], Backend]] = {
    # Embedded CPU default: reads text with RapidOCR, no downloads.
    "ocr-lite": _ocr_lite,
    # Production: GLM-4.6V-Flash (or any image-text-to-text checkpoint) via transformers.
    "glm": _glm,
}
