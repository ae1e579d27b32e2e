"""``Annotated`` dependency aliases: routes take these, never ``app.state`` directly.

The providers are ``async def`` although they never await: FastAPI runs a plain ``def``
dependency in a worker thread, and those thread hops cost the gateway a fifth of its
CPU per request at concurrency 32 (see docs/performance.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from flashsight_common.requestid import read_request_id

from gateway.images.admission import ImageAdmitter
from gateway.answer.captioning import Captioner
from gateway.config import GatewaySettings
from gateway.answer.degradation import ReasonerGuard
from gateway.upstreams.guarded import GuardedUpstream
from gateway.telemetry.metrics import GatewayMetrics
from gateway.answer.service import Pipeline
from gateway.store.redis_guard import RedisGuard
from gateway.answer.shedding import LoadShedder


async def _settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


async def _pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


async def _admitter(request: Request) -> ImageAdmitter:
    return request.app.state.pipeline.admitter


async def _captioner(request: Request) -> Captioner:
    return request.app.state.pipeline.captioner


async def _vision(request: Request) -> GuardedUpstream:
    return request.app.state.pipeline.vision


async def _reasoner(request: Request) -> ReasonerGuard:
    return request.app.state.pipeline.reasoner


async def _shedder(request: Request) -> LoadShedder:
    return request.app.state.shedder


async def _redis_guard(request: Request) -> RedisGuard:
    return request.app.state.redis_guard


async def _metrics(request: Request) -> GatewayMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[GatewaySettings, Depends(_settings)]
PipelineDep = Annotated[Pipeline, Depends(_pipeline)]
AdmitterDep = Annotated[ImageAdmitter, Depends(_admitter)]
CaptionerDep = Annotated[Captioner, Depends(_captioner)]
VisionDep = Annotated[GuardedUpstream, Depends(_vision)]
ReasonerDep = Annotated[ReasonerGuard, Depends(_reasoner)]
ShedderDep = Annotated[LoadShedder, Depends(_shedder)]
RedisGuardDep = Annotated[RedisGuard, Depends(_redis_guard)]
RequestIdDep = Annotated[str, Depends(read_request_id)]
MetricsDep = Annotated[GatewayMetrics, Depends(_metrics)]
