"""gateway.api.deps: routes get the lifespan's objects through the aliases."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi import FastAPI
from gateway.api.deps import AnswerServiceDep, ReasonerDep, SettingsDep, VisionDep
from gateway.config import GatewaySettings
from gateway.main import create_app


async def test_the_aliases_resolve_to_the_service_and_its_upstreams(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    app: FastAPI = create_app(make_settings())

    @app.get("/test-deps")
    async def probe(
        service: AnswerServiceDep, vision: VisionDep, reasoner: ReasonerDep, settings: SettingsDep
    ) -> dict[str, bool]:
        return {
            "vision": vision is service.vision,
            "reasoner": reasoner is service.reasoner,
            "settings": settings is app.state.settings,
        }

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://g") as c,
    ):
        answer = (await c.get("/test-deps")).json()
    assert answer == {"vision": True, "reasoner": True, "settings": True}
