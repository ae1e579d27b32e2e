"""The framework-level handlers: FastAPI's own errors in the OpenAI shape, beside a service's table."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from flashsight_common.errors import ApiError
from flashsight_common.handlers import (
    api_error_response,
    framework_handlers,
    install_handlers,
    service_handlers,
)
from pydantic import BaseModel, Field


class Body(BaseModel):
    n: int = Field(ge=1)


class ServiceError(Exception):
    """A service's own error, mapped by its own entry in the same table."""


def make_client(logger: logging.Logger) -> httpx.AsyncClient:
    app = FastAPI()

    @app.post("/v1/things")
    async def things(body: Body) -> dict[str, int]:
        return {"n": body.n}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    @app.get("/mine")
    async def mine() -> None:
        raise ServiceError("mine")

    async def service_error(request: object, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": {"message": "mine"}}, status_code=418)

    install_handlers(app, {ServiceError: service_error, **framework_handlers(logger)})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
def client() -> httpx.AsyncClient:
    return make_client(logging.getLogger("flashsight.test_handlers"))


def error_of(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    error: dict[str, object] = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_validation_is_400_naming_the_field(client: httpx.AsyncClient) -> None:
    error = error_of(await client.post("/v1/things", json={"n": 0}), 400)
    assert error["param"] == "n" and error["code"] == "invalid_value"
    assert error["type"] == "invalid_request_error"


async def test_a_body_that_is_not_json_is_400_invalid_json(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/things", content=b'{"n": ', headers={"Content-Type": "application/json"})
    assert error_of(resp, 400) == {
        "message": "the request body must be JSON (Content-Type: application/json): it could not be parsed",
        "type": "invalid_request_error", "param": None, "code": "invalid_json",
    }


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert error_of(await client.get("/v2/x"), 404) == {
        "message": "no route /v2/x; see GET /v1/models and POST /v1/chat/completions",
        "type": "not_found_error", "param": None, "code": None,
    }
    error = error_of(await client.get("/v1/things"), 405)
    assert error["message"] == "method GET is not allowed on /v1/things"
    assert error["type"] == "invalid_request_error"


async def test_a_bug_is_500_and_logged_to_the_service_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="flashsight.test_handlers"):
        async with make_client(logging.getLogger("flashsight.test_handlers")) as client:
            error = error_of(await client.get("/boom"), 500)
    assert error["message"].startswith("internal error (RuntimeError); the server log has the details")
    assert "kaput" not in error["message"] and error["code"] == "internal_error"  # no internals leak
    (record,) = [r for r in caplog.records if r.name == "flashsight.test_handlers"]
    assert record.getMessage() == "unhandled error on GET /boom" and record.exc_info is not None


async def test_the_service_entry_wins_for_its_own_errors(client: httpx.AsyncClient) -> None:
    resp = await client.get("/mine")
    assert resp.status_code == 418 and resp.json() == {"error": {"message": "mine"}}


class Refused(ApiError):
    status_code = 503
    error_type = "service_unavailable"
    default_code = "down"
    default_retry_after = 3


@pytest.mark.parametrize("log_server_errors", [True, False])
async def test_a_service_table_renders_its_own_errors_and_logs_5xx_when_asked(
    caplog: pytest.LogCaptureFixture, log_server_errors: bool
) -> None:
    app = FastAPI()

    @app.get("/down")
    async def down() -> None:
        raise Refused("the thing is down", param="x")

    logger = logging.getLogger("flashsight.test_service_table")
    install_handlers(app, service_handlers(ApiError, logger, log_server_errors=log_server_errors))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            resp = await client.get("/down")
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "3"
    assert resp.content == api_error_response(Refused("the thing is down", param="x")).body
    assert resp.json()["error"]["code"] == "down"
    assert ("the thing is down" in caplog.text) is log_server_errors
