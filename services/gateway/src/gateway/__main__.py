"""``python -m gateway``: settings from the environment, then uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

import uvicorn
from flashsight_common.logs import configure_logging
from pydantic import ValidationError
from uvicorn.supervisors import Multiprocess

from gateway.api.connguard import ConnectionLimits, GuardedHttpProtocol
from gateway.config import GatewaySettings
from gateway.telemetry import multiproc

if TYPE_CHECKING:
    from fastapi import FastAPI

# GATEWAY_HTTP_PARSER → uvicorn's ``http=``; both cap request line + headers at
# h11_max_incomplete_event_size (GATEWAY_MAX_HEADER_BYTES); only httptools (the default)
# also has the connection guards (head/body timeouts, connection cap: gateway.api.connguard).
_HTTP_PROTOCOLS: dict[str, type[asyncio.Protocol] | str] = {
    "httptools": GuardedHttpProtocol,
    "h11": "h11",
}


def _describe(error: object) -> str:
    # Field errors name their variable (loc: section, field); checks across fields or within
    # a section (loc () or (section,)) carry the variable in the message.
    loc = tuple(map(str, error["loc"]))  # type: ignore[index]
    message = str(error["msg"]).removeprefix("Value error, ")  # type: ignore[index]
    return f"  GATEWAY_{loc[1].upper()}: {message}" if len(loc) > 1 else f"  {message}"


def main() -> None:
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        problems = "\n".join(_describe(error) for error in exc.errors())
        sys.exit(f"gateway: invalid configuration:\n{problems}")
    configure_logging(settings.logging.log_level, settings.logging.log_format)
    try:
        app = build_app(settings)  # also with workers: a bad config fails here, once, with its message
    except ValueError as exc:  # e.g. an unreadable keyword file
        sys.exit(f"gateway: invalid configuration: {exc}")
    if settings.server.workers > 1:
        # Each worker process imports the factory and builds its own app from the same environment;
        # /metrics sums every worker's series (gateway.telemetry.multiproc), breakers stay per worker.
        logging.getLogger("gateway").info(
            "%d workers: /metrics reports their totals; each keeps its own circuit breakers",
            settings.server.workers,
        )
        with multiproc.shared_metrics_dir():
            config = uvicorn.Config("gateway.__main__:app_from_env", factory=True, **_server(settings))
            serve(config, settings)
    else:
        serve(uvicorn.Config(app, **_server(settings)), settings)


def serve(config: uvicorn.Config, settings: GatewaySettings) -> None:
    """``uvicorn.run``, with the connection limits on the config (pickled to worker processes with it)."""
    config.connection_limits = ConnectionLimits(  # type: ignore[attr-defined]  # read by GuardedHttpProtocol
        head_timeout_s=settings.server.head_timeout_s,
        body_timeout_s=settings.server.body_timeout_s,
        max_connections=settings.server.max_connections,
    )
    server = uvicorn.Server(config)
    if settings.server.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        server.run()
        if not server.started:
            sys.exit(3)  # uvicorn's STARTUP_FAILURE, as uvicorn.run exits


def build_app(settings: GatewaySettings) -> FastAPI:
    from gateway.main import create_app  # after logging is configured, so start-up lines are formatted

    return create_app(settings)


def app_from_env() -> FastAPI:
    """The app of one worker process (``GATEWAY_WORKERS`` > 1)."""
    settings = GatewaySettings()
    configure_logging(settings.logging.log_level, settings.logging.log_format)
    return build_app(settings)


def _server(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "host": settings.server.host,
        "port": settings.server.port,
        "log_level": settings.logging.log_level,
        "log_config": None,
        "access_log": False,
        # Slow or stalled clients: idle keep-alive sockets close, and a request line + headers
        # larger than this are refused (both parsers), so a trickling client holds one socket.
        "timeout_keep_alive": max(1, round(settings.server.keepalive_timeout_s)),
        "h11_max_incomplete_event_size": settings.server.max_header_bytes,
        "http": _HTTP_PROTOCOLS[settings.server.http_parser],
        "workers": settings.server.workers,
        "timeout_graceful_shutdown": 10,
    }


if __name__ == "__main__":
    main()
