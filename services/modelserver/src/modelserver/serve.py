"""Running a model service under uvicorn (``python -m vision`` / ``python -m reasoner``)."""

from __future__ import annotations

import logging
import sys

import uvicorn
from fastapi import FastAPI

from modelserver.config import ModelServerSettings
from modelserver.middleware import RequestIdLogFilter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

# Longer than the gateway's pooled-connection idle expiry, so the server never closes a
# connection the client is about to reuse (which surfaces as a spurious reset).
KEEP_ALIVE_S = 75


def configure_logging(level: str) -> None:
    """One stderr handler on the root logger whose lines carry the request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdLogFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = logging.getLevelName(level.upper()) if level != "trace" else 5
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def run(app: FastAPI, settings: ModelServerSettings) -> None:
    """Serve ``app`` on ``settings.host:settings.port`` until interrupted."""
    configure_logging(settings.log_level)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # keep the handler configured above
        access_log=False,  # RequestContextMiddleware logs each request with its id
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=10,
    )
