"""``Annotated`` dependency aliases: routes take these, never ``app.state`` directly.

Everything a route needs hangs off the one request service built in the lifespan
(``app.state.service``), besides the settings, the metrics and the Redis guard.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from flashsight_common.deps import RequestIdDep, app_state

from gateway.answer.service import AnswerService
from gateway.config import GatewaySettings
from gateway.store.redis_guard import RedisGuard
from gateway.telemetry.metrics import GatewayMetrics
from gateway.upstreams.guarded import GuardedUpstream, ReasonerGuard


async def _vision(request: Request) -> GuardedUpstream:
    return request.app.state.service.vision  # type: ignore[no-any-return]


async def _reasoner(request: Request) -> ReasonerGuard:
    return request.app.state.service.reasoner  # type: ignore[no-any-return]


SettingsDep = Annotated[GatewaySettings, Depends(app_state("settings"))]
AnswerServiceDep = Annotated[AnswerService, Depends(app_state("service"))]
VisionDep = Annotated[GuardedUpstream, Depends(_vision)]
ReasonerDep = Annotated[ReasonerGuard, Depends(_reasoner)]
RedisGuardDep = Annotated[RedisGuard, Depends(app_state("redis_guard"))]
MetricsDep = Annotated[GatewayMetrics, Depends(app_state("metrics"))]

__all__ = [
    "AnswerServiceDep",
    "MetricsDep",
    "ReasonerDep",
    "RedisGuardDep",
    "RequestIdDep",
    "SettingsDep",
    "VisionDep",
]
