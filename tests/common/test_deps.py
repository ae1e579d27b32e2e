"""flashsight_common.deps: the app.state providers and request id alias every service's routes use."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, FastAPI
from flashsight_common.deps import RequestIdDep, app_state
from flashsight_common.requestid import RequestIdMiddleware


async def test_app_state_provides_what_the_lifespan_stored_and_the_request_id() -> None:
    app = FastAPI()
    app.state.thing = {"k": 1}
    app.add_middleware(RequestIdMiddleware)

    @app.get("/t")
    async def route(thing: Annotated[dict[str, int], Depends(app_state("thing"))], rid: RequestIdDep) -> dict:
        return {"thing": thing, "rid": rid}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        body = (await client.get("/t", headers={"X-Request-ID": "abc-123"})).json()
    assert body == {"thing": {"k": 1}, "rid": "abc-123"}
    assert app_state("thing").__name__ == "app_state_thing"
