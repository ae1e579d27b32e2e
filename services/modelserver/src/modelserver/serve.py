"""Running a model service under uvicorn (``python -m vision`` / ``python -m reasoner``)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI
from flashsight_common.logs import configure_logging

from modelserver.config import ModelServerSettings

# Longer than the gateway's pooled-connection idle expiry, so the server never closes a
# connection the client is about to reuse (which surfaces as a spurious reset).
KEEP_ALIVE_S = 75


def run(app: FastAPI, settings: ModelServerSettings) -> None:
    """Serve ``app`` on ``settings.host:settings.port`` until interrupted."""
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # keep the handler configured above
        access_log=False,  # AccessMiddleware logs each request with its id
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=10,
    )
