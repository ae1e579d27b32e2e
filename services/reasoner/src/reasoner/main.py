"""The reasoner's app factory: the shared model-server runtime with the reasoner's backends."""

from __future__ import annotations

from fastapi import FastAPI
from modelserver.app import create_model_app

from reasoner.backends import BACKENDS
from reasoner.config import ReasonerSettings
from reasoner.routes import router


def create_app(settings: ReasonerSettings | None = None) -> FastAPI:
    """The reasoner service (``settings`` default: from ``REASONER_*`` environment variables)."""
    settings = settings or ReasonerSettings()
    return create_model_app(settings, backends=BACKENDS, title="FlashSight reasoner", extra_routers=[router])
