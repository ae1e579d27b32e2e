"""Dependency pieces every FlashSight service's ``deps.py`` is built from.

Routes take ``Annotated`` aliases and never read ``app.state`` themselves. The providers
are ``async def`` although they never await: FastAPI runs a plain ``def`` dependency in a
worker thread, and those thread hops cost the gateway a fifth of its CPU per request at
concurrency 32 (see docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from flashsight_common.requestid import read_request_id


def app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency provider returning ``request.app.state.<name>`` (set in the lifespan)."""

    async def provide(request: Request) -> Any:
        return getattr(request.app.state, name)

    provide.__name__ = provide.__qualname__ = f"app_state_{name}"
    return provide


RequestIdDep = Annotated[str, Depends(read_request_id)]
"""The request's id (``X-Request-ID``, validated, or a fresh one)."""
