"""Whether an upstream stage is ready, whatever OpenAI-compatible server it is.

FlashSight's own model services answer ``/readyz`` (200 ready, 503 while loading, with a
JSON body). vLLM and SGLang have no ``/readyz``: they answer ``/health`` (200 when the
engine is up, an empty body on vLLM). The probe asks the paths in :data:`PROBE_PATHS`
order, moves on past a 404 (the server has no such route), and remembers the path that
answered so the next probe asks it first; if that one later 404s (the stage was swapped
for another server), it looks again. Any answer other than 404 is the verdict: 200 is
ready, anything else (503 while a model loads) is not.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from gateway import fastjson

PROBE_PATHS: tuple[str, ...] = ("/readyz", "/health")
"""FlashSight's model services, then vLLM and SGLang (and most servers built like them)."""


class ReadinessProbe:
    """Readiness of one upstream base URL, following whichever probe path it serves."""

    def __init__(self, base_url: str, *, timeout_s: float, paths: tuple[str, ...] = PROBE_PATHS) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.paths = paths
        self.path: str | None = None
        """The path that answered last (asked first next time)."""

    async def check(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """``{"ready": bool, "status": int | None, "probe": path, "detail": ...}``; never raises."""
        order = [self.path, *(p for p in self.paths if p != self.path)] if self.path else list(self.paths)
        for path in order:
            try:
                async with session.get(f"{self.base_url}{path}", timeout=self.timeout) as resp:
                    if resp.status == 404:
                        continue
                    body = await resp.read()
            except Exception as exc:
                return {
                    "ready": False,
                    "status": None,
                    "probe": path,
                    "detail": f"{type(exc).__name__}: {exc}",
                }
            self.path = path
            return {
                "ready": resp.status == 200,
                "status": resp.status,
                "probe": path,
                "detail": _detail(body),
            }
        self.path = None
        return {
            "ready": False,
            "status": 404,
            "probe": None,
            "detail": f"the upstream serves none of {', '.join(self.paths)}",
        }


def _detail(body: bytes) -> Any:
    """The probe's body: parsed JSON (FlashSight's services), else its text (vLLM: empty)."""
    try:
        return fastjson.loads(body) if body.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return body[:200].decode(errors="replace")
