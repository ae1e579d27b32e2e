"""The vision service's app factory: the shared model-server runtime with vision's backends."""

from __future__ import annotations

from fastapi import FastAPI
from modelserver.app import create_model_app

from vision.backends import BACKENDS
from vision.config import VisionSettings


def create_app(settings: VisionSettings | None = None) -> FastAPI:
    """The vision service (``settings`` default: from ``VISION_*`` environment variables)."""
    settings = settings or VisionSettings()
    return create_model_app(settings, backends=BACKENDS, title="FlashSight vision")
