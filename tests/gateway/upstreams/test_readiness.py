"""The readiness probe follows what each kind of stage server answers (real sockets).

FlashSight's services serve /readyz; vLLM and SGLang serve /health only (vLLM with an
empty body). Before this probe the gateway asked /readyz alone and called a healthy vLLM
reasoner not ready (404), so /readyz said "degraded" while every answer was fine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from gateway.upstreams.readiness import ReadinessProbe


class Server:
    """An aiohttp app on a free loopback port whose GET routes the test sets and counts."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[], web.Response]] = {}
        self.hits: Counter[str] = Counter()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        answer = self.routes.get(request.path)
        return answer() if answer else web.Response(status=404, text="404: Not Found")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_get("/{tail:.*}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.url = f"http://127.0.0.1:{port}"
    yield srv
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def flashsight_ready() -> web.Response:
    return web.json_response({"status": "ready", "model": "ocr-lite"})


def flashsight_loading() -> web.Response:
    return web.json_response({"status": "loading"}, status=503)


def vllm_health() -> web.Response:
    return web.Response(status=200)  # vLLM's /health: 200, empty body


async def test_flashsight_service_is_probed_on_readyz(server: Server, session: aiohttp.ClientSession) -> None:
    server.routes = {"/readyz": flashsight_ready, "/health": vllm_health}
    result = await ReadinessProbe(server.url, timeout_s=2).check(session)
    assert result == {
        "ready": True,
        "status": 200,
        "probe": "/readyz",
        "detail": {"status": "ready", "model": "ocr-lite"},
    }
    assert server.hits["/health"] == 0


async def test_a_loading_flashsight_service_is_not_ready_and_health_is_not_asked(
    server: Server, session: aiohttp.ClientSession
) -> None:
    server.routes = {"/readyz": flashsight_loading, "/health": vllm_health}
    result = await ReadinessProbe(server.url, timeout_s=2).check(session)
    assert (result["ready"], result["status"], result["probe"]) == (False, 503, "/readyz")
    assert server.hits["/health"] == 0


async def test_vllm_is_ready_through_health_and_the_path_is_remembered(
    server: Server, session: aiohttp.ClientSession
) -> None:
    server.routes = {"/health": vllm_health}
    probe = ReadinessProbe(server.url, timeout_s=2)
    first, second = await probe.check(session), await probe.check(session)
    assert first == second == {"ready": True, "status": 200, "probe": "/health", "detail": None}
    assert server.hits == {"/readyz": 1, "/health": 2}  # the second probe went straight to /health


async def test_an_sglang_engine_still_starting_is_not_ready(
    server: Server, session: aiohttp.ClientSession
) -> None:
    server.routes = {"/health": lambda: web.Response(status=503, text="engine not ready")}
    result = await ReadinessProbe(server.url, timeout_s=2).check(session)
    assert result == {"ready": False, "status": 503, "probe": "/health", "detail": "engine not ready"}


async def test_a_stage_swapped_for_another_server_is_found_again(
    server: Server, session: aiohttp.ClientSession
) -> None:
    server.routes = {"/health": vllm_health}
    probe = ReadinessProbe(server.url, timeout_s=2)
    assert (await probe.check(session))["probe"] == "/health"
    server.routes = {"/readyz": flashsight_ready}  # vLLM replaced by FlashSight's reasoner
    result = await probe.check(session)
    assert (result["ready"], result["probe"]) == (True, "/readyz")


async def test_a_server_with_neither_path_is_not_ready_and_says_which_were_asked(
    server: Server, session: aiohttp.ClientSession
) -> None:
    result = await ReadinessProbe(server.url, timeout_s=2).check(session)
    assert result["ready"] is False and result["status"] == 404
    assert "/readyz" in result["detail"] and "/health" in result["detail"]


async def test_an_unreachable_stage_is_not_ready(session: aiohttp.ClientSession) -> None:
    result = await ReadinessProbe("http://127.0.0.1:1", timeout_s=2).check(session)
    assert result["ready"] is False and result["status"] is None
    assert "Connect" in result["detail"]
