"""The end of every request: one access log line and its metrics.

The middleware opens a :class:`RequestRecord` per request (in a context variable, so
the request service can fill it in without knowing about HTTP) and hands it to
:meth:`AccessRecorder.finish` once the last byte is sent. The access line carries the
id, route, image hashes, cache outcome, degradation, status and latency; never image
bytes nor keys, and the prompt only when ``GATEWAY_LOG_PROMPTS=true``.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from flashsight_common.watch import QUIET_PATHS

from gateway.schemas import FlashSightMeta
from gateway.telemetry.metrics import GatewayMetrics

logger = logging.getLogger("gateway.access")

_PROMPT_LOG_CHARS = 500
# A text log line must stay one line: the path and the prompt are the caller's, and a
# decoded %0a in a path would otherwise start a forged line. (JSON lines escape them anyway.)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass
class RequestRecord:
    """What the request service learnt about the request it is handling (None until it routed one)."""

    meta: FlashSightMeta | None = None
    prompt: str | None = None


current_record: ContextVar[RequestRecord | None] = ContextVar("current_record", default=None)


def note_answer(meta: FlashSightMeta, *, prompt: str) -> None:
    """Called by the request service once the route is chosen; the metadata object keeps filling in."""
    record = current_record.get()
    if record is not None:
        record.meta = meta
        record.prompt = prompt


class AccessRecorder:
    """Writes the access line and records the request's metrics."""

    def __init__(self, metrics: GatewayMetrics, *, log_prompts: bool) -> None:
        self.metrics = metrics
        self.log_prompts = log_prompts

    def finish(
        self,
        record: RequestRecord,
        *,
        method: str,
        path: str,
        endpoint: str,
        status: int,
        elapsed_s: float,
        first_byte_s: float | None,
        streamed: bool,
    ) -> None:
        meta = record.meta
        self.metrics.record_request(
            endpoint=endpoint,
            status=status,
            meta=meta,
            elapsed_s=elapsed_s,
            first_byte_s=first_byte_s,
            streamed=streamed,
        )
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": round(elapsed_s * 1000, 1),
        }
        if meta is not None:
            fields |= {
                "route": meta.route,
                "route_reason": meta.route_reason,
                "keyword": meta.matched_keyword,
                "images": meta.images,
                "cache": meta.caption_cache,
                "degraded": meta.degraded_reason if meta.degraded else False,
                "models": meta.models.model_dump(exclude_none=True),
                "stream": streamed,
            }
        if self.log_prompts and record.prompt is not None:
            fields["prompt"] = record.prompt[:_PROMPT_LOG_CHARS]
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        summary = " ".join(f"{k}={_short(v)}" for k, v in fields.items() if k not in ("method", "path"))
        logger.log(level, "%s %s %s", method, _escaped(path), _escaped(summary), extra={"fields": fields})


def _escaped(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _short(value: Any) -> str:
    # text logs: image hashes abbreviated (the JSON line keeps them whole)
    if isinstance(value, list):
        return ",".join(str(v)[:12] for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)
