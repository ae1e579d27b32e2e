"""The header-capped httptools protocol: big headers refused like h11 does, normal traffic untouched."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from gateway.api.httpserver import HeaderCappedHttpToolsProtocol

from devkit.processes import free_port

CAP = 4096


async def echo_length(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """A bare ASGI app answering the request body's length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.fixture
def server() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        echo_length,
        host="127.0.0.1",
        port=port,
        http=HeaderCappedHttpToolsProtocol,
        h11_max_incomplete_event_size=CAP,
        lifespan="off",
        log_level="error",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_normal_requests_with_large_bodies_and_keep_alive_pass(server: str) -> None:
    with httpx.Client(base_url=server, timeout=5) as client:
        for size in (0, 10, 300_000):  # bodies far past the header cap are not headers
            resp = client.post("/", content=b"x" * size, headers={"X-Pad": "p" * (CAP // 2)})
            assert resp.status_code == 200 and resp.text == str(size)


def test_headers_past_the_cap_get_431_and_the_connection_closes(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(CAP // 512 + 8):  # trickled: never completes, must not be buffered forever
                sock.sendall(b"a" * 512)
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        answer = sock.recv(200)
    assert answer.startswith(b"HTTP/1.1 431"), answer


def test_the_cap_counts_each_request_on_a_keep_alive_connection_afresh(server: str) -> None:
    with httpx.Client(base_url=server, timeout=5) as client:
        for _ in range(5):  # 5 x 3 KB of headers on one connection: each request under the cap
            assert client.get("/", headers={"X-Pad": "p" * 3000}).status_code == 200
