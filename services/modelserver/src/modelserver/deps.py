"""``Annotated`` dependencies of the model routes; routes never read ``app.state`` themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from flashsight_common.deps import RequestIdDep, app_state

from modelserver.backend import Backend
from modelserver.config import ModelServerSettings
from modelserver.engine import Engine
from modelserver.errors import NotReadyError
from modelserver.metrics import ModelMetrics
from modelserver.readiness import Readiness


def get_backend(request: Request) -> Backend:
    backend: Backend | None = request.app.state.backend
    if backend is None:
        raise NotReadyError("the model backend is not built yet")
    return backend


def get_engine(request: Request) -> Engine:
    """The engine, once the model is loaded and warm; 503 + Retry-After before that."""
    readiness: Readiness = request.app.state.readiness
    engine: Engine | None = request.app.state.engine
    if engine is None or not readiness.ready:
        raise NotReadyError(f"the model is not ready yet ({readiness.detail}); retry shortly")
    return engine


def get_served_model_id(request: Request) -> str:
    """The id responses report: ``served_model_name`` if set, else the backend's own id."""
    settings: ModelServerSettings = request.app.state.settings
    return settings.served_model_name or get_backend(request).model_id


SettingsDep = Annotated[ModelServerSettings, Depends(app_state("settings"))]
ReadinessDep = Annotated[Readiness, Depends(app_state("readiness"))]
BackendDep = Annotated[Backend, Depends(get_backend)]
EngineDep = Annotated[Engine, Depends(get_engine)]
MetricsDep = Annotated[ModelMetrics, Depends(app_state("metrics"))]
ServedModelDep = Annotated[str, Depends(get_served_model_id)]

__all__ = [
    "BackendDep",
    "EngineDep",
    "MetricsDep",
    "ReadinessDep",
    "RequestIdDep",
    "ServedModelDep",
    "SettingsDep",
]
