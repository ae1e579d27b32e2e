"""The guarded protocol under a real uvicorn: silent, slow and surplus connections are let go."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from gateway.api.connguard import ConnectionLimits, GuardedHttpProtocol

from devkit.processes import free_port

LIMITS = ConnectionLimits(head_timeout_s=0.5, body_timeout_s=1.0, max_connections=4)


async def read_body_then_ok(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """A bare ASGI app that reads the whole body, then answers 200."""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    port = free_port()
    config = uvicorn.Config(
        read_body_then_ok,
        host="127.0.0.1",
        port=port,
        http=GuardedHttpProtocol,
        lifespan="off",
        log_level="error",
    )
    config.connection_limits = LIMITS  # type: ignore[attr-defined]  # as gateway.__main__ sets it
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(10)


def _answer(sock: socket.socket, within_s: float = 3.0) -> bytes:
    sock.settimeout(within_s)
    out = b""
    try:
        while chunk := sock.recv(4096):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def test_a_silent_connection_is_closed_after_the_head_timeout(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        started = time.monotonic()
        assert _answer(sock) == b""  # closed, nothing said
        assert LIMITS.head_timeout_s - 0.1 < time.monotonic() - started < 2.5


def test_a_trickled_head_gets_408(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 408 ")


def test_a_trickled_body_gets_408(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
        assert _answer(sock).startswith(b"HTTP/1.1 408 ")


def test_a_connection_past_the_cap_gets_503_and_requests_still_pass(server: tuple[str, int]) -> None:
    held = [socket.create_connection(server) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.1)
        with socket.create_connection(server) as extra:
            assert _answer(extra).startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")
