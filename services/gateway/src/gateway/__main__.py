"""``python -m gateway``: settings from the environment, then uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from pydantic import ValidationError

from gateway.config import GatewaySettings
from gateway.httpserver import capped_httptools
from gateway.logs import configure_logging

# GATEWAY_HTTP_PARSER → uvicorn's ``http=`` (both enforce GATEWAY_MAX_HEADER_BYTES).
_HTTP_PROTOCOLS: dict[str, Callable[[int], Any]] = {
    "httptools": capped_httptools,
    "h11": lambda _cap: "h11",  # capped by h11_max_incomplete_event_size
}


def _describe(error: object) -> str:
    # Field errors name their variable; cross-field checks (loc ()) carry it in the message.
    loc = "_".join(map(str, error["loc"])).upper()  # type: ignore[index]
    message = str(error["msg"]).removeprefix("Value error, ")  # type: ignore[index]
    return f"  GATEWAY_{loc}: {message}" if loc else f"  {message}"


def main() -> None:
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        problems = "\n".join(_describe(error) for error in exc.errors())
        sys.exit(f"gateway: invalid configuration:\n{problems}")
    configure_logging(settings.log_level, settings.log_format)
    from gateway.main import create_app  # after logging, so start-up lines are formatted

    try:
        app = create_app(settings)
    except ValueError as exc:  # e.g. an unreadable keyword file
        sys.exit(f"gateway: invalid configuration: {exc}")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
        # Slow or stalled clients: idle keep-alive sockets close, and a request line + headers
        # larger than this are refused (both parsers), so a trickling client holds one socket, no worker.
        timeout_keep_alive=max(1, round(settings.keepalive_timeout_s)),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        http=_HTTP_PROTOCOLS[settings.http_parser](settings.max_header_bytes),
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
