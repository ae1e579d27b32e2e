"""The X-Request-ID contract: a caller's plain id is kept, anything else replaced, always returned."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from flashsight_common.requestid import RequestIdMiddleware, read_request_id, request_id_var

RequestIdDep = Annotated[str, Depends(read_request_id)]


def make_app(seen: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/id")
    async def which(request_id: RequestIdDep) -> dict[str, str]:
        seen.append(request_id_var.get())  # what a log line written here would carry
        return {"request_id": request_id}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            yield b"data: 1\n\n"
            yield b"data: 2\n\n"

        return StreamingResponse(pieces(), media_type="text/event-stream")

    app.add_middleware(RequestIdMiddleware)
    return app


@pytest.fixture
async def client_and_seen() -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    seen: list[str] = []
    transport = httpx.ASGITransport(app=make_app(seen))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, seen


async def test_a_plain_caller_id_is_kept_returned_and_in_the_log_context(
    client_and_seen: tuple[httpx.AsyncClient, list[str]],
) -> None:
    client, seen = client_and_seen
    resp = await client.get("/id", headers={"X-Request-ID": "trace-me:42/a=b"})
    assert resp.headers["x-request-id"] == "trace-me:42/a=b"
    assert resp.json() == {"request_id": "trace-me:42/a=b"} and seen == ["trace-me:42/a=b"]
    assert request_id_var.get() == "-"  # reset after the request


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 129, "newline\nInjected: 1", "ünïcode"])
async def test_a_missing_or_unsafe_id_is_replaced_by_a_fresh_one(
    client_and_seen: tuple[httpx.AsyncClient, list[str]], incoming: str | None
) -> None:
    client, _ = client_and_seen
    headers = {"X-Request-ID": incoming.encode("utf-8")} if incoming is not None else {}
    resp = await client.get("/id", headers=headers)  # type: ignore[arg-type]
    made = resp.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made) and resp.json()["request_id"] == made


async def test_streams_and_unknown_routes_carry_the_id_too(
    client_and_seen: tuple[httpx.AsyncClient, list[str]],
) -> None:
    client, _ = client_and_seen
    streamed = await client.get("/stream", headers={"X-Request-ID": "s-1"})
    assert streamed.headers["x-request-id"] == "s-1" and streamed.text == "data: 1\n\ndata: 2\n\n"
    missing = await client.get("/nothing", headers={"X-Request-ID": "s-2"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "s-2"


def test_the_log_filter_reads_the_context() -> None:
    from flashsight_common.requestid import RequestIdLogFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    token = request_id_var.set("abc")
    try:
        assert RequestIdLogFilter().filter(record) and record.request_id == "abc"  # type: ignore[attr-defined]
    finally:
        request_id_var.reset(token)
