"""The log line shape every FlashSight service writes, so a request can be followed by its id.

``<PREFIX>_LOG_FORMAT=json`` (what docker compose sets): one JSON object per line with
``ts``, ``level``, ``logger``, ``request_id``, ``message`` and, on access lines, the
service's structured fields (``extra={"fields": {...}}``). ``text`` (the default, for a
terminal and ``make run``): ``time LEVEL logger [request_id] message``.
Lines written outside a request (start-up, the model services' batching thread, which
serves several requests at once) show ``-``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from flashsight_common.requestid import RequestIdLogFilter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra={"fields": {...}}`` adds structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k not in line})
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


FORMATTERS: dict[str, Callable[[], logging.Formatter]] = {
    "text": lambda: logging.Formatter(TEXT_FORMAT),
    "json": JsonFormatter,
}


def configure_logging(level: str, log_format: str = "text") -> None:
    """One stderr handler on the root logger (uvicorn's loggers routed to it).

    ``level`` is a logging level name (any case) or ``trace`` (5, below debug, as uvicorn
    has it); each service's Settings has already refused anything else.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[log_format]())
    handler.addFilter(RequestIdLogFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(5 if level == "trace" else level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
