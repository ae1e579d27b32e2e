from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from gateway.errors import (
    UpstreamOverloadedError,
    UpstreamProtocolError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.upstreams.client import UpstreamClient, UpstreamTimeouts, build_session

from devkit.stub_upstream import StubUpstream

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi there friend"}]}
FAST = UpstreamTimeouts(connect_s=1.0, total_s=0.5, first_token_s=0.5, idle_s=0.3)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = build_session(max_connections=8, keepalive_s=5)
    yield s
    await s.close()


@pytest.fixture
async def stub() -> AsyncIterator[StubUpstream]:
    async with StubUpstream(model="ocr-lite") as s:
        s.behaviour.answer = "one two three four"
        yield s


def client_for(stub: StubUpstream, session: aiohttp.ClientSession) -> UpstreamClient:
    return UpstreamClient("vision", stub.url, session, timeouts=FAST)


async def collect(client: UpstreamClient) -> list[dict[str, Any]]:
    stream = await client.open_stream(BODY, request_id="rid-1")
    return [chunk async for chunk in stream]


async def test_complete_returns_the_completion_and_passes_the_request_id(stub, session) -> None:
    answer = await client_for(stub, session).complete(BODY, request_id="rid-1")
    assert answer["choices"][0]["message"]["content"] == "one two three four"
    assert stub.headers[-1]["X-Request-ID"] == "rid-1"
    assert stub.requests[-1]["stream"] is False


async def test_stream_yields_chunks_and_asks_for_usage(stub, session) -> None:
    chunks = await collect(client_for(stub, session))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "one two three four"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert stub.requests[-1]["stream_options"] == {"include_usage": True}


async def test_model_id_is_discovered_then_follows_responses(stub, session) -> None:
    client = client_for(stub, session)
    assert await client.model_id() == "ocr-lite"
    stub.model = "glm-4.6v-flash"
    assert await client.model_id() == "ocr-lite"  # memoised: no GET per request
    await client.complete(BODY)
    assert await client.model_id() == "glm-4.6v-flash"


async def test_unreachable_upstream(session) -> None:
    client = UpstreamClient("reasoner", "http://127.0.0.1:1", session, timeouts=FAST)
    with pytest.raises(
        UpstreamUnavailableError, match=r"reasoner is unreachable at http://127\.0\.0\.1:1"
    ) as info:
        await client.complete(BODY)
    assert info.value.status() == 503 and info.value.headers()["Retry-After"] == "5"
    with pytest.raises(UpstreamUnavailableError):
        await client.open_stream(BODY)


@pytest.mark.parametrize(
    ("mode", "error", "status"),
    [
        ("error_500", UpstreamServerError, 503),
        ("overloaded", UpstreamOverloadedError, 503),
        ("hang", UpstreamTimeoutError, 503),
        ("garbage", UpstreamProtocolError, 502),
        ("die_mid_stream", UpstreamUnavailableError, 503),
    ],
)
async def test_failures_are_translated(stub, session, mode, error, status) -> None:
    stub.behaviour.mode = mode
    client = client_for(stub, session)
    with pytest.raises(error) as info:
        await client.complete(BODY)
    assert info.value.status() == status
    assert info.value.__cause__ is not None or mode in ("error_500", "overloaded", "garbage")


async def test_overloaded_keeps_the_upstream_retry_after(stub, session) -> None:
    stub.behaviour.mode = "overloaded"
    with pytest.raises(UpstreamOverloadedError) as info:
        await client_for(stub, session).complete(BODY)
    assert info.value.headers() == {"Retry-After": "2"}


async def test_4xx_is_passed_through_with_its_body(stub, session) -> None:
    stub.behaviour.mode = "reject_400"
    with pytest.raises(UpstreamRejectedError) as info:
        await client_for(stub, session).complete(BODY)
    assert info.value.status() == 400
    assert info.value.body()["error"]["code"] == "invalid_image"


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("die_mid_stream", UpstreamUnavailableError),
        ("error_event", UpstreamServerError),
        ("stall_mid_stream", UpstreamTimeoutError),
    ],
)
async def test_mid_stream_failures_raise_after_the_first_chunks(stub, session, mode, error) -> None:
    stub.behaviour.mode = mode
    stream = await client_for(stub, session).open_stream(BODY)
    seen: list[dict[str, Any]] = []
    with pytest.raises(error):
        async for chunk in stream:
            seen.append(chunk)
    assert any(c["choices"][0]["delta"].get("content") for c in seen)


async def test_first_token_timeout(stub, session) -> None:
    stub.behaviour.latency_s = 2.0
    client = client_for(stub, session)
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamTimeoutError):
        await collect(client)
    assert asyncio.get_running_loop().time() - started < 1.5


async def test_a_caller_that_cannot_fall_back_waits_for_the_first_token_as_for_a_whole_answer(
    stub, session
) -> None:
    stub.behaviour.latency_s = 0.6
    patient = UpstreamTimeouts(connect_s=1.0, total_s=3.0, first_token_s=0.2, idle_s=0.3)
    client = UpstreamClient("reasoner", stub.url, session, timeouts=patient)
    with pytest.raises(UpstreamTimeoutError, match=r"0\.2s"):
        await collect(client)  # another answer to fall back on: give up at first_token_s
    stream = await client.open_stream(BODY, can_fall_back=False)
    chunks = [chunk async for chunk in stream]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def test_stream_error_status_raises_before_iteration(stub, session) -> None:
    stub.behaviour.mode = "error_500"
    with pytest.raises(UpstreamServerError, match="stub backend exploded"):
        await client_for(stub, session).open_stream(BODY)


async def test_readiness_reports_without_raising(stub, session) -> None:
    client = client_for(stub, session)
    assert (await client.readiness())["ready"] is True
    stub.behaviour.mode = "not_ready"
    report = await client.readiness()
    assert report["ready"] is False and report["status"] == 503
    down = UpstreamClient("x", "http://127.0.0.1:1", session, timeouts=FAST)
    assert (await down.readiness())["ready"] is False


@pytest.mark.parametrize(
    "event",
    [b'data: ["not", "a", "chunk"]\n\n', b'data: "text"\n\n', b'data: {"choices": []}\xff\n\n'],
    ids=["json-array", "json-string", "invalid-utf8"],
)
async def test_a_stream_event_that_is_not_a_json_object_is_a_protocol_error(session, event: bytes) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(event)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        client = UpstreamClient("vision", f"http://127.0.0.1:{port}", session, timeouts=FAST)
        with pytest.raises(UpstreamProtocolError, match="vision sent an invalid stream"):
            await collect(client)
    finally:
        await runner.cleanup()


async def test_whether_vision_calls_tools_comes_from_its_readiness_then_is_remembered(stub, session) -> None:
    client = client_for(stub, session)
    stub.behaviour.mode = "not_ready"
    assert await client.calls_tools() is False  # not ready: asked again next time
    stub.behaviour.mode, stub.behaviour.calls_tools = "ok", True
    assert await client.calls_tools() is True
    stub.behaviour.calls_tools = False
    assert await client.calls_tools() is True  # remembered while the model is the same
    client.note_model("ocr-lite")
    client.note_model("glm-4.6v")  # swapped: ask again
    assert await client.calls_tools() is False


async def test_a_server_that_does_not_say_calls_no_tools_unless_the_setting_says(stub, session) -> None:
    assert await client_for(stub, session).calls_tools() is False  # no calls_tools in its /readyz (vLLM)
    told = UpstreamClient("vision", stub.url, session, timeouts=FAST, calls_tools=True)
    assert await told.calls_tools() is True


async def test_a_first_tool_call_piece_counts_as_the_first_token(stub, session) -> None:
    stub.behaviour.tool_calls = [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    stream = await client_for(stub, session).open_stream({**BODY, "tools": [{"type": "function"}]})
    chunks = aiter(stream)
    await anext(chunks)  # the role chunk
    assert not stream.got_content
    await anext(chunks)
    assert stream.got_content
    await stream.aclose()
