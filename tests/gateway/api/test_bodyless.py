"""OPTIONS and the key-exempt paths never read a body: the app sees none, the socket is closed after."""

from __future__ import annotations

import httpx
import pytest
from gateway.api.bodyless import BodylessMiddleware, declares_body
from starlette.types import Message, Receive, Scope, Send


class BodyReader:
    """An ASGI app that reads the body it is given and answers its length."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message: Message = await receive()
        self.bodies.append(message.get("body", b""))
        size = str(len(self.bodies[-1])).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(size)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": size})


@pytest.fixture
def app() -> BodyReader:
    return BodyReader()


def _client(app: BodyReader) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=BodylessMiddleware(app)), base_url="http://t")


async def test_an_exempt_path_sees_no_body_and_the_connection_closes(app: BodyReader) -> None:
    async with _client(app) as client:
        resp = await client.post("/healthz", content=b"x" * 100_000)
    assert resp.text == "0" and app.bodies == [b""]
    assert resp.headers["connection"] == "close"


async def test_an_api_path_reads_its_body(app: BodyReader) -> None:
    async with _client(app) as client:
        resp = await client.post("/v1/chat/completions", content=b"x" * 10)
    assert resp.text == "10" and "connection" not in resp.headers


async def test_options_is_the_same_405_everywhere_and_never_reaches_the_app(app: BodyReader) -> None:
    async with _client(app) as client:
        answers = [await client.options(path) for path in ("/v1/chat/completions", "/no/such/route")]
    assert {a.status_code for a in answers} == {405} and answers[0].text == answers[1].text
    assert answers[0].headers["allow"] == "GET, HEAD, POST" and app.bodies == []


def test_what_declares_a_body() -> None:
    def scope(*headers: tuple[bytes, bytes]) -> Scope:
        return {"type": "http", "headers": list(headers)}

    assert declares_body(scope((b"content-length", b"5")))
    assert declares_body(scope((b"transfer-encoding", b"chunked")))
    assert not declares_body(scope((b"content-length", b"0")))
    assert not declares_body(scope())
