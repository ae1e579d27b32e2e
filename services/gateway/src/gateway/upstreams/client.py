"""A thin OpenAI-protocol client for one upstream (vision or reasoner), on aiohttp.

aiohttp rather than httpx: httpx's connection pool degrades under concurrency
(encode/httpx#3215; ~210 vs ~1,000 req/s through a minimal proxy here). The session
(pool, keep-alive) is built once in the lifespan and shared by all requests.

Every failure leaves this module as a :class:`gateway.errors.UpstreamError`:
unreachable → ``UpstreamUnavailableError``, 503/429 → ``UpstreamOverloadedError``,
other 5xx → ``UpstreamServerError``, no answer in time → ``UpstreamTimeoutError``,
non-OpenAI reply or a stream cut short → ``UpstreamProtocolError``,
4xx → ``UpstreamRejectedError`` carrying the upstream's status and body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from flashsight_common.sse import SSEProtocolError, iter_events

from gateway import fastjson
from gateway.errors import (
    UpstreamError,
    UpstreamOverloadedError,
    UpstreamProtocolError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.upstreams.readiness import ReadinessProbe

if TYPE_CHECKING:
    from gateway.config import UpstreamSettings

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """How long to wait: to connect, for a whole non-streamed answer, and between stream events."""

    connect_s: float = 3.0
    total_s: float = 60.0
    first_token_s: float = 60.0
    """Streaming: from the request until the first content (or finish) event, for a caller
    that has another answer to fall back on (see :meth:`UpstreamClient.open_stream`)."""
    idle_s: float = 15.0
    """Streaming: between two events once the first content arrived."""


def build_session(*, max_connections: int, keepalive_s: float) -> aiohttp.ClientSession:
    """A pooled keep-alive session for one upstream (call inside a running event loop)."""
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        limit_per_host=max_connections,
        keepalive_timeout=keepalive_s,
        enable_cleanup_closed=True,
    )
    return aiohttp.ClientSession(connector=connector, json_serialize=fastjson.dumps)


class UpstreamClient:
    """Chat completions (plain and streamed) against one upstream, plus its model id and readiness."""

    def __init__(
        self,
        name: str,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        timeouts: UpstreamTimeouts,
        calls_tools: bool | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeouts = timeouts
        self._model_id: str | None = None
        self._tools_setting = calls_tools
        """True / False: the operator said; None: ask the upstream's readiness (see :meth:`calls_tools`)."""
        self._calls_tools: bool | None = calls_tools
        self._readiness = ReadinessProbe(self.base_url, timeout_s=_PROBE_TIMEOUT_S)

    @classmethod
    def from_settings(
        cls, name: Literal["vision", "reasoner"], upstreams: UpstreamSettings, session: aiohttp.ClientSession
    ) -> UpstreamClient:
        """One upstream's client: the shared connect and idle timeouts, its own total and first-token."""
        url, total_s, first_token_s = {
            "vision": (upstreams.vision_url, upstreams.vision_timeout_s, upstreams.vision_timeout_s),
            "reasoner": (
                upstreams.reasoner_url,
                upstreams.reasoner_timeout_s,
                upstreams.reasoner_first_token_timeout_s,
            ),
        }[name]
        timeouts = UpstreamTimeouts(
            connect_s=upstreams.connect_timeout_s,
            total_s=total_s,
            first_token_s=first_token_s,
            idle_s=upstreams.stream_idle_timeout_s,
        )
        said = {"auto": None, "on": True, "off": False}[upstreams.vision_tools]
        return cls(name, url, session, timeouts=timeouts, calls_tools=said if name == "vision" else None)

    # --- chat -------------------------------------------------------------------------

    async def complete(self, body: Mapping[str, Any], *, request_id: str | None = None) -> dict[str, Any]:
        """POST a non-streamed chat completion; the parsed ``chat.completion`` dict."""
        timeout = aiohttp.ClientTimeout(total=self.timeouts.total_s, connect=self.timeouts.connect_s)
        try:
            async with self.session.post(
                self._chat_url, json={**body, "stream": False}, headers=_headers(request_id), timeout=timeout
            ) as resp:
                await self._check_status(resp)
                try:
                    data = await resp.json(content_type=None, loads=fastjson.loads)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise self._protocol_error("answered with a body that is not JSON") from exc
        except UpstreamError:
            raise
        except Exception as exc:
            raise self._translate(exc, total_s=self.timeouts.total_s) from exc
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise self._protocol_error("answered JSON that is not a chat.completion (no choices)")
        self.note_model(data.get("model"))
        return data

    async def open_stream(
        self, body: Mapping[str, Any], *, request_id: str | None = None, can_fall_back: bool = True
    ) -> UpstreamStream:
        """POST a streamed chat completion; returns once the upstream accepted it (status checked).

        The first token is awaited ``first_token_s``: a caller gives up that early only to
        answer otherwise (the reasoner's stream switches to vision). One that cannot fall back
        (``can_fall_back=False``: a request that must call a tool, which vision's text would
        not do) waits as long as for a whole answer (``total_s``), since giving up early would
        only turn a slow answer into an error.
        """
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeouts.connect_s)
        payload = {**body, "stream": True, "stream_options": {"include_usage": True}}
        first_token_s = self.timeouts.first_token_s
        if not can_fall_back:
            first_token_s = max(first_token_s, self.timeouts.total_s)
        started = time.monotonic()
        try:
            resp = await asyncio.wait_for(
                self.session.post(
                    self._chat_url, json=payload, headers=_headers(request_id), timeout=timeout
                ),
                first_token_s,
            )
        except Exception as exc:
            raise self._translate(exc, total_s=first_token_s) from exc
        try:
            await self._check_status(resp)
        except BaseException:
            resp.close()
            raise
        return UpstreamStream(self, resp, started=started, first_token_s=first_token_s)

    # --- model id and readiness ---------------------------------------------------------

    async def model_id(self) -> str:
        """The upstream's model id from GET /v1/models, memoised (refreshed by :meth:`note_model`)."""
        if self._model_id is None:
            data = await self._get_json("/v1/models")
            try:
                self._model_id = str(data["data"][0]["id"])
            except (KeyError, IndexError, TypeError) as exc:
                raise self._protocol_error("GET /v1/models listed no model") from exc
        return self._model_id

    def note_model(self, model_id: object) -> None:
        """Remember the model a response named (the upstream may have been swapped)."""
        if isinstance(model_id, str) and model_id and model_id != self._model_id:
            if self._model_id is not None:
                logger.info("%s now serves model %r (was %r)", self.name, model_id, self._model_id)
                self._calls_tools = self._tools_setting  # a new model: ask again
            self._model_id = model_id

    async def calls_tools(self) -> bool:
        """Whether the upstream's model calls tools: the setting, else its ready ``/readyz`` says.

        FlashSight's model services answer ``"calls_tools": true|false`` once the model is
        loaded; a server that does not say (vLLM's and SGLang's ``/health``) counts as not
        calling. A ready answer is remembered until the upstream names another model; a
        not-ready one is not (the next request asks again).
        """
        if self._calls_tools is None:
            status = await self.readiness()
            if not status["ready"]:
                return False
            detail = status.get("detail")
            self._calls_tools = isinstance(detail, dict) and detail.get("calls_tools") is True
            verb = "calls" if self._calls_tools else "does not call"
            logger.info("%s %s tools (its readiness says)", self.name, verb)
        return self._calls_tools

    async def readiness(self) -> dict[str, Any]:
        """``{"ready": bool, ...detail}`` from /readyz, or /health on vLLM / SGLang (never raises)."""
        return await self._readiness.check(self.session)

    # --- internals --------------------------------------------------------------------------

    @property
    def _chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"

    async def _get_json(self, path: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=_PROBE_TIMEOUT_S * 2, connect=self.timeouts.connect_s)
        try:
            async with self.session.get(f"{self.base_url}{path}", timeout=timeout) as resp:
                await self._check_status(resp)
                return await resp.json(content_type=None, loads=fastjson.loads)
        except UpstreamError:
            raise
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._protocol_error(f"GET {path} answered a body that is not JSON") from exc
        except Exception as exc:
            raise self._translate(exc, total_s=_PROBE_TIMEOUT_S * 2) from exc

    async def _check_status(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status == 200:
            return
        body = await _read_error_body(resp)
        said = _error_message(body) or f"HTTP {resp.status}"
        message = f"{self.name} answered HTTP {resp.status}: {said}"
        if resp.status in (429, 503):
            raise UpstreamOverloadedError(
                message, upstream=self.name, retry_after=_retry_after(resp.headers.get("Retry-After"))
            )
        if resp.status >= 500:
            raise UpstreamServerError(message, upstream=self.name)
        raise UpstreamRejectedError(message, upstream=self.name, status=resp.status, upstream_body=body)

    def _protocol_error(self, what: str) -> UpstreamProtocolError:
        return UpstreamProtocolError(f"{self.name} {what}", upstream=self.name)

    def _translate(self, exc: BaseException, *, total_s: float) -> UpstreamError:
        """An aiohttp/asyncio failure as the gateway's upstream error."""
        if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return UpstreamTimeoutError(f"{self.name} did not answer within {total_s:g}s", upstream=self.name)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return UpstreamUnavailableError(
                f"{self.name} is unreachable at {self.base_url} ({exc.strerror})", upstream=self.name
            )
        if isinstance(exc, aiohttp.ClientError | OSError):
            return UpstreamUnavailableError(
                f"{self.name} connection failed: {type(exc).__name__}: {exc}", upstream=self.name
            )
        if isinstance(exc, SSEProtocolError):
            return self._protocol_error(f"sent an invalid stream: {exc}")
        raise exc  # not an upstream failure: a bug, let it surface as one


class UpstreamStream:
    """The chunk dicts of one streamed answer, with first-token and idle timeouts; close when done."""

    def __init__(
        self, client: UpstreamClient, resp: aiohttp.ClientResponse, *, started: float, first_token_s: float
    ) -> None:
        self.client = client
        self._resp = resp
        self._started = started
        self._first_token_s = first_token_s
        self._events = iter_events(_lines(resp))
        self.got_content = False

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        timeouts = self.client.timeouts
        finished = False
        try:
            while True:
                if self.got_content:
                    wait = timeouts.idle_s
                else:  # the first-token budget counts from the request, not from the last event
                    wait = max(0.0, self._first_token_s - (time.monotonic() - self._started))
                try:
                    chunk = await asyncio.wait_for(self._events.__anext__(), wait)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise self.client._translate(exc, total_s=wait) from exc
                if "error" in chunk:
                    message = _error_message(chunk) or "error event"
                    raise UpstreamServerError(
                        f"{self.client.name} failed mid-stream: {message}",
                        upstream=self.client.name,
                        code="upstream_stream_error",
                    )
                self.client.note_model(chunk.get("model"))
                choices = chunk.get("choices") or []
                if any(_has_text(c) or c.get("finish_reason") for c in choices):
                    self.got_content = True
                finished = finished or any(c.get("finish_reason") for c in choices)
                yield chunk
        finally:
            await self.aclose()
        if not finished:
            raise self.client._protocol_error("ended its stream before a finish_reason")

    async def aclose(self) -> None:
        """Drop the connection (the upstream then stops generating for us)."""
        self._resp.close()


async def _lines(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for raw in resp.content:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SSEProtocolError(f"upstream sent a line that is not UTF-8: {raw[:80]!r}") from exc


def _has_text(choice: Mapping[str, Any]) -> bool:
    # A first token: text, thinking (``reasoning`` is vLLM's newer name) or a tool-call piece.
    delta = choice.get("delta") or {}
    return any(delta.get(k) for k in ("content", "reasoning_content", "reasoning", "tool_calls"))


def _headers(request_id: str | None) -> dict[str, str]:
    return {"X-Request-ID": request_id} if request_id else {}


async def _read_error_body(resp: aiohttp.ClientResponse) -> dict[str, Any] | None:
    try:
        body = await resp.json(content_type=None, loads=fastjson.loads)
    except Exception:
        return None
    return body if isinstance(body, dict) else None


def _error_message(body: Mapping[str, Any] | None) -> str | None:
    error = (body or {}).get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or "")
    return str(error) if error else None


def _retry_after(value: str | None) -> int | None:
    try:
        return max(0, int(float(value))) if value is not None else None
    except ValueError:
        return None
