"""``Annotated`` dependency aliases: routes take these, never ``app.state`` directly."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.admission import ImageAdmitter
from gateway.captioning import Captioner
from gateway.config import GatewaySettings
from gateway.degrade import ReasonerGuard
from gateway.guarded import GuardedUpstream
from gateway.metrics import GatewayMetrics
from gateway.pipeline import Pipeline
from gateway.redis_guard import RedisGuard
from gateway.shedding import LoadShedder


def _settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


def _pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


def _admitter(request: Request) -> ImageAdmitter:
    return request.app.state.pipeline.admitter


def _captioner(request: Request) -> Captioner:
    return request.app.state.pipeline.captioner


def _vision(request: Request) -> GuardedUpstream:
    return request.app.state.pipeline.vision


def _reasoner(request: Request) -> ReasonerGuard:
    return request.app.state.pipeline.reasoner


def _shedder(request: Request) -> LoadShedder:
    return request.app.state.shedder


def _redis_guard(request: Request) -> RedisGuard:
    return request.app.state.redis_guard


def _metrics(request: Request) -> GatewayMetrics:
    return request.app.state.metrics


def _request_id(request: Request) -> str:
    # Set by RequestContextMiddleware from the caller's X-Request-ID or freshly made.
    return str(request.scope.get("state", {}).get("request_id", "-"))


SettingsDep = Annotated[GatewaySettings, Depends(_settings)]
PipelineDep = Annotated[Pipeline, Depends(_pipeline)]
AdmitterDep = Annotated[ImageAdmitter, Depends(_admitter)]
CaptionerDep = Annotated[Captioner, Depends(_captioner)]
VisionDep = Annotated[GuardedUpstream, Depends(_vision)]
ReasonerDep = Annotated[ReasonerGuard, Depends(_reasoner)]
ShedderDep = Annotated[LoadShedder, Depends(_shedder)]
RedisGuardDep = Annotated[RedisGuard, Depends(_redis_guard)]
RequestIdDep = Annotated[str, Depends(_request_id)]
MetricsDep = Annotated[GatewayMetrics, Depends(_metrics)]
