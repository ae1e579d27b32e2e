"""gateway.answer.streaming: priming an upstream stream, and relaying it as the gateway's own."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gateway.answer.job import Job
from gateway.answer.route_choice import RouteDecision
from gateway.answer.streaming import prime, relay
from gateway.errors import UpstreamServerError
from gateway.schemas import DEGRADED_NOTICE, FlashSightMeta, GatewayChatRequest


class FakeStream:
    """An upstream stream: its chunks, optionally failing before chunk ``fail_at``."""

    def __init__(self, texts: list[str], *, fail_at: int | None = None, model: str = "smollm2") -> None:
        self.chunks = [
            {"model": model, "choices": [{"index": 0, "delta": {"content": t}}]} for t in texts
        ] + [{"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
        self.fail_at = fail_at
        self.got_content = False
        self.closed = False

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise UpstreamServerError("it died", upstream="reasoner")
            self.got_content = self.got_content or bool(chunk["choices"][0]["delta"].get("content"))
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


def _job() -> Job:
    request = GatewayChatRequest.model_validate({"messages": [{"role": "user", "content": "why?"}]})
    meta = FlashSightMeta(route="cascade", route_reason="keyword", matched_keyword="why")
    return Job(request, [], RouteDecision("cascade", "keyword", "why"), "req-s", time.perf_counter(), meta)


async def _read(events: AsyncIterator[bytes]) -> list[Any]:
    out: list[Any] = []
    async for event in events:
        body = event.decode().removeprefix("data: ").strip()
        out.append(body if body == "[DONE]" else json.loads(body))
    return out


async def test_priming_reads_up_to_the_first_token_and_replays_it() -> None:
    stream = FakeStream(["a", "b"])
    primed = await prime(stream, started=time.perf_counter())  # type: ignore[arg-type]
    assert primed.model == "smollm2" and len(primed.head) == 1
    assert [c["choices"][0]["delta"].get("content") async for c in primed] == ["a", "b", None]


async def test_a_failure_before_the_first_token_propagates_and_closes_the_stream() -> None:
    stream = FakeStream(["a"], fail_at=0)
    with pytest.raises(UpstreamServerError):
        await prime(stream, started=time.perf_counter())  # type: ignore[arg-type]
    assert stream.closed


async def test_a_whole_stream_is_relayed_with_timings_and_flashsight() -> None:
    job, stream = _job(), FakeStream(["Because ", "of X."])
    primed = await prime(stream, started=time.perf_counter())  # type: ignore[arg-type]
    events = await _read(relay(job, primed, answered_by="reasoner"))
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e.get("choices"))
    assert text == "Because of X." and events[-1] == "[DONE]"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["flashsight"]["timings_ms"]["reasoner"] is not None
    assert events[-2]["flashsight"]["timings_ms"]["total"] is not None and stream.closed


async def test_losing_the_reasoner_mid_stream_ends_with_the_notice_degraded() -> None:
    job, stream, failures = _job(), FakeStream(["Because ", "of"], fail_at=2), []
    primed = await prime(stream, started=time.perf_counter())  # type: ignore[arg-type]
    events = await _read(relay(job, primed, answered_by="reasoner", on_failure=lambda: failures.append(1)))
    assert events[-2]["choices"][0]["finish_reason"] == "degraded"
    assert events[-3]["choices"][0]["delta"]["content"] == f"\n\n{DEGRADED_NOTICE}"
    assert events[-2]["flashsight"]["degraded_reason"] == "reasoner_failed_mid_stream"
    assert failures == [1] and job.meta.degraded


async def test_vision_answering_alone_starts_with_the_notice_and_a_vision_failure_is_an_error() -> None:
    job = _job()
    job.meta.mark_degraded("reasoner_timeout")
    primed = await prime(FakeStream(["订单"], fail_at=1, model="ocr-lite"), started=time.perf_counter())  # type: ignore[arg-type]
    events = await _read(relay(job, primed, answered_by="vision"))
    assert events[1]["choices"][0]["delta"]["content"] == f"{DEGRADED_NOTICE}\n"
    assert events[-2]["error"]["code"] == "upstream_server_error" and "flashsight" in events[-2]
