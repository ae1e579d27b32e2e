"""A tiny OpenAI-compatible upstream whose behaviour tests (and the bench) configure.

It serves ``POST /v1/chat/completions`` (plain and SSE), ``GET /v1/models``, ``/healthz``
and ``/readyz`` on a real socket (aiohttp), so the gateway's real HTTP client talks to it.
Behaviour is a mutable :class:`StubBehaviour`: answer text, latency, and a failure mode
(see :data:`MODES`). Every request it receives is recorded for assertions.

In a test::

    async with StubUpstream(model="ocr-lite") as vision:
        vision.behaviour.mode = "error_500"
        ... GatewaySettings(vision_url=vision.url) ...

As a process (the bench's "20 ms stub upstream")::

    python -m devkit.stub_upstream --port 8181 --latency-ms 20 --model ocr-lite

With ``--record`` the process keeps what it received, for a test in another process to
read from ``GET /_stub/requests`` (off by default: the long-running bench stub would grow).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# mode → what the stub does with a chat request
MODES: dict[str, str] = {
    "ok": "answer normally (after `latency_s`)",
    "error_500": "HTTP 500 with an OpenAI error body",
    "overloaded": "HTTP 503 + Retry-After: 2 (a full queue)",
    "reject_400": "HTTP 400 with an OpenAI error body (code invalid_image)",
    "hang": "accept and never answer (until `hang_s`)",
    "garbage": "HTTP 200 with a body that is not JSON",
    "die_mid_stream": "stream `die_after` chunks, then drop the connection (plain: drop at once)",
    "error_event": "stream `die_after` chunks, then an OpenAI error event and [DONE]",
    "stall_mid_stream": "stream `die_after` chunks, then go silent for `hang_s`",
    "not_ready": "/readyz answers 503 (chat still works)",
}


@dataclass
class StubBehaviour:
    """What the stub answers and how it fails; tests change it between requests."""

    mode: str = "ok"
    answer: str = "stub answer"
    caption: str = "A stub caption: an order page with the text 订单号 12345."
    """Answered when the request's text starts with "Describe" (the gateway's caption prompt)."""
    latency_s: float = 0.0
    hang_s: float = 30.0
    die_after: int = 2
    piece_delay_s: float = 0.0
    """Pause between streamed pieces (fault tests need streams that last)."""
    confidence: float | None = None
    reply: Callable[[dict[str, Any]], str] | None = None
    """Overrides `answer`/`caption`: the answer text for a request body."""
    tool_calls: list[dict[str, Any]] | None = None
    """Answered (``finish_reason: tool_calls``, content null) when a request offers tools and
    ``tool_choice`` is not ``none``; streamed as vLLM does, the arguments in fragments."""
    engine_fields: bool = False
    """Add what vLLM 0.3x adds to its answers (``system_fingerprint``, ``prompt_token_ids``,
    ``kv_transfer_params``, per-choice ``token_ids`` / ``stop_reason``, ``reasoning``, …):
    the gateway must pass none of it on."""
    reasoning: str | None = None
    """Thinking sent as vLLM 0.3x's ``reasoning`` (not ``reasoning_content``)."""
    calls_tools: bool | None = None
    """What ``/readyz`` says as ``calls_tools`` (None: nothing, as a server that does not say)."""
    finish_reason: str = "stop"
    """The finish of a text answer (``length``: as if ``max_tokens`` cut it)."""

    def calls_for(self, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        if self.tool_calls and body.get("tools") and body.get("tool_choice") != "none":
            return self.tool_calls
        return None

    def text_for(self, body: dict[str, Any]) -> str:
        if self.reply is not None:
            return self.reply(body)
        last = _last_user_text(body)
        return self.caption if last.lstrip().startswith("Describe") else self.answer


@dataclass
class StubUpstream:
    """An OpenAI-compatible stub server on 127.0.0.1 (an async context manager)."""

    model: str = "stub-model"
    port: int = 0
    behaviour: StubBehaviour = field(default_factory=StubBehaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    record: bool = True
    """Keep every request (tests); the long-running bench stub turns it off."""
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "messages" in r]

    async def start(self) -> StubUpstream:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/_stub/requests", self._recorded)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StubUpstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- handlers -------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "stub"}],
            }
        )

    async def _recorded(self, request: web.Request) -> web.Response:
        # What a test in another process asks: the chat bodies received so far (empty unless recording).
        return web.json_response(self.chat_requests())

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.behaviour.mode == "not_ready":
            return web.json_response({"status": "loading"}, status=503, headers={"Retry-After": "5"})
        ready: dict[str, Any] = {"status": "ready", "model": self.model}
        if self.behaviour.calls_tools is not None:
            ready["calls_tools"] = self.behaviour.calls_tools
        return web.json_response(ready)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if self.record:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
        b = self.behaviour
        if b.latency_s:
            await asyncio.sleep(b.latency_s)
        failure = _FAILURES.get(b.mode)
        if failure is not None:
            return await failure(self, request)
        if b.mode == "die_mid_stream" and not body.get("stream"):
            request.transport.close()  # type: ignore[union-attr]
            raise asyncio.CancelledError
        text = b.text_for(body)
        if body.get("stream"):
            return await self._stream(request, body, text)
        calls = b.calls_for(body)
        message: dict[str, Any] = {"role": "assistant", "content": None if calls else text}
        if calls:
            message["tool_calls"] = calls
        if b.reasoning is not None:
            message["reasoning"] = b.reasoning
        finish = "tool_calls" if calls else b.finish_reason
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
        payload: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [choice],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": len(text.split()),
                "total_tokens": 10 + len(text.split()),
            },
        }
        if b.confidence is not None:
            payload["confidence"] = b.confidence
        if b.engine_fields:
            payload.update(VLLM_COMPLETION_FIELDS)
            choice.update(VLLM_CHOICE_FIELDS)
            message.setdefault("reasoning", None)
            message.update({"refusal": None, "annotations": None, "audio": None, "function_call": None})
            payload["usage"]["prompt_tokens_details"] = {"cached_tokens": 4}
        return web.json_response(payload)

    async def _stream(self, request: web.Request, body: dict[str, Any], text: str) -> web.StreamResponse:
        b = self.behaviour
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        cid = f"chatcmpl-{uuid.uuid4().hex}"

        def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
                "choices": [choice],
                **extra,
            }
            if b.engine_fields:
                chunk.update(VLLM_CHUNK_FIELDS)
                choice.update({"logprobs": None, "stop_reason": None, "token_ids": [1, 2]})
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()

        await resp.write(event({"role": "assistant", "content": ""}))
        if b.reasoning is not None:
            await resp.write(event({"reasoning": b.reasoning}))
        pieces = [w + " " for w in text.split(" ")]
        pieces[-1] = pieces[-1][:-1]
        calls = b.calls_for(body)
        for index, call in enumerate(calls or ()):  # a head piece, then the arguments in two fragments
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            head = {"index": index, "id": call["id"], "type": "function", "function": {"name": name}}
            await resp.write(event({"tool_calls": [head]}))
            for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                await resp.write(event({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
        for i, piece in enumerate([] if calls else pieces):
            if b.mode in _MID_STREAM and i == b.die_after:
                return await _MID_STREAM[b.mode](request, resp)
            if b.piece_delay_s:
                await asyncio.sleep(b.piece_delay_s)
            await resp.write(event({"content": piece}))
        extra = {"confidence": b.confidence} if b.confidence is not None else {}
        await resp.write(event({}, "tool_calls" if calls else b.finish_reason, **extra))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": len(pieces), "total_tokens": 10 + len(pieces)}
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": self.model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


# What vLLM 0.32 adds beside the OpenAI fields (as issue 11 saw from its CPU build as the reasoner).
VLLM_COMPLETION_FIELDS: dict[str, Any] = {
    "system_fingerprint": "vllm-0.32.0-cpu",
    "service_tier": None,
    "prompt_logprobs": None,
    "prompt_token_ids": [1, 2, 3],
    "kv_transfer_params": None,
    "ec_transfer_params": None,
    "metrics": {"queued_s": 0.0},
}
VLLM_CHOICE_FIELDS: dict[str, Any] = {
    "logprobs": None,
    "stop_reason": None,
    "token_ids": [4, 5],
    "routed_experts": None,
}
VLLM_CHUNK_FIELDS: dict[str, Any] = {"system_fingerprint": "vllm-0.32.0-cpu", "prompt_token_ids": None}


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {
        "error": {
            "message": message,
            "type": "server_error" if status >= 500 else "invalid_request_error",
            "param": None,
            "code": code,
        }
    }
    return web.json_response(body, status=status, headers=headers)


async def _fail_500(stub: StubUpstream, request: web.Request) -> web.StreamResponse:
    return _error(500, "stub backend exploded", "backend_error")


async def _fail_overloaded(stub: StubUpstream, request: web.Request) -> web.StreamResponse:
    return _error(503, "queue full", "queue_full", {"Retry-After": "2"})


async def _fail_400(stub: StubUpstream, request: web.Request) -> web.StreamResponse:
    return _error(400, "image part 1 is not a decodable image", "invalid_image")


async def _fail_hang(stub: StubUpstream, request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(stub.behaviour.hang_s)
    return _error(500, "hung", "hung")


async def _fail_garbage(stub: StubUpstream, request: web.Request) -> web.StreamResponse:
    return web.Response(text="<html>not json</html>", content_type="text/html")


_FAILURES = {
    "error_500": _fail_500,
    "overloaded": _fail_overloaded,
    "reject_400": _fail_400,
    "hang": _fail_hang,
    "garbage": _fail_garbage,
}


async def _die(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    await asyncio.sleep(0.05)  # a process dies some time after its last token, not in the same packet
    request.transport.close()  # type: ignore[union-attr]  # no chunked terminator: a dropped connection
    raise asyncio.CancelledError


async def _error_event(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    error = {
        "error": {"message": "engine failed", "type": "server_error", "param": None, "code": "backend_error"}
    }
    await resp.write(f"data: {json.dumps(error)}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _stall(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    await asyncio.sleep(30.0)
    await resp.write_eof()
    return resp


_MID_STREAM = {"die_mid_stream": _die, "error_event": _error_event, "stall_mid_stream": _stall}


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return "\n".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return ""


async def _serve(args: argparse.Namespace) -> None:
    stub = StubUpstream(
        model=args.model,
        port=args.port,
        behaviour=StubBehaviour(
            answer=args.answer, latency_s=args.latency_ms / 1000, piece_delay_s=args.piece_delay_ms / 1000
        ),
        record=args.record,
    )
    async with stub:
        print(f"stub upstream {stub.model!r} on {stub.url} (latency {args.latency_ms} ms)", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible stub upstream")
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--model", default="stub-model")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--answer", default="stub answer")
    parser.add_argument("--piece-delay-ms", type=float, default=0.0, help="pause between streamed pieces")
    parser.add_argument(
        "--record", action="store_true", help="keep every request body; GET /_stub/requests lists them"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
