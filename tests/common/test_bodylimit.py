"""The body limit: 413 in the OpenAI shape, whether the size is declared or only counted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from flashsight_common.bodylimit import BodySizeLimitMiddleware

LIMIT = 1000


def make_client(*, bad_length_code: str | None = None) -> httpx.AsyncClient:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=LIMIT, bad_length_code=bad_length_code)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 100):
        yield b"x" * 100


async def test_a_body_within_the_limit_reaches_the_route_whole() -> None:
    async with make_client() as client:
        assert (await client.post("/echo", content=b"x" * LIMIT)).json() == {"received": LIMIT}
        assert (await client.post("/echo", content=chunks(LIMIT))).json() == {"received": LIMIT}


async def test_a_declared_size_over_the_limit_is_413_saying_what_is_accepted() -> None:
    async with make_client() as client:
        resp = await client.post("/echo", content=b"x" * (LIMIT + 1))
    assert resp.status_code == 413 and resp.headers["connection"] == "close"
    assert resp.json() == {
        "error": {
            "message": f"request body is {LIMIT + 1} bytes; at most {LIMIT} bytes are accepted "
            "(send smaller or fewer images)",
            "type": "invalid_request_error",
            "param": None,
            "code": "payload_too_large",
        }
    }


async def test_a_chunked_body_is_counted_while_read() -> None:
    async with make_client() as client:
        resp = await client.post("/echo", content=chunks(LIMIT + 100))
    assert resp.status_code == 413
    assert resp.json()["error"]["message"].startswith(f"request body is more than {LIMIT} bytes;")


@pytest.mark.parametrize("code", [None, "invalid_value"])
async def test_a_content_length_that_is_no_number_is_400_with_the_service_code(code: str | None) -> None:
    async with make_client(bad_length_code=code) as client:
        resp = await client.post("/echo", content=b"{}", headers={"Content-Length": "12abc"})
    assert resp.status_code == 400
    assert resp.json()["error"] == {
        "message": "invalid Content-Length header '12abc'",
        "type": "invalid_request_error",
        "param": None,
        "code": code,
    }


async def test_a_non_ascii_digit_content_length_is_400_not_a_crash() -> None:
    # "²" passes str.isdigit() but not int(); the raw ASGI scope carries it as latin-1 bytes.
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def never_called(scope: object, receive: object, send: object) -> None:
        raise AssertionError("the app must not see a request with a broken Content-Length")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "headers": [(b"content-length", "²".encode("latin-1"))],
    }
    await BodySizeLimitMiddleware(never_called, max_bytes=LIMIT)(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 400
