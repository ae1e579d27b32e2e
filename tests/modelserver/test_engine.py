"""The batching engine with a scripted backend: batches, queue limit, stops, cancel, failures."""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
import weakref
from collections.abc import AsyncIterator, Sequence

import pytest
from flashsight_common.schemas import ChatMessage
from modelserver.backend import BatchSink, GenerationRequest, SamplingParams
from modelserver.engine import Completion, Engine, Finished, TextDelta
from modelserver.errors import BackendError, InvalidRequestError, NotReadyError, QueueFullError

from tests.support.fake_backend import FakeBackend

_ids = itertools.count()


def request(text: str, *, stop: Sequence[str] = (), max_tokens: int = 512, thinking: bool = False,
            ) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"r{next(_ids)}",
        messages=[ChatMessage(role="user", content=text)],
        sampling=SamplingParams(max_tokens=max_tokens, stop=tuple(stop)),
        enable_thinking=thinking,
    )


@pytest.fixture
async def make_engine() -> AsyncIterator[object]:
    engines: list[Engine] = []

    def make(backend: object, **options: object) -> Engine:
        options = {"max_batch_size": 4, "max_wait_s": 0.05, "max_queue": 64, **options}
        engine = Engine(backend, **options)  # type: ignore[arg-type]
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop()


async def wait_until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


async def test_concurrent_requests_are_batched(make_engine) -> None:
    backend = FakeBackend(step_s=0.005)
    engine = make_engine(backend, max_batch_size=4, max_wait_s=0.05)
    answers = await asyncio.gather(*(engine.complete(request(f"say:answer {i}")) for i in range(8)))
    assert [a.text for a in answers] == [f"answer {i}" for i in range(8)]
    assert max(engine.batch_sizes) > 1, engine.batch_sizes
    assert sum(size * count for size, count in engine.batch_sizes.items()) == 8
    assert all(size <= 4 for size in engine.batch_sizes)
    assert engine.batches_run == sum(engine.batch_sizes.values()) == len(backend.batch_sizes)


async def test_text_arrives_while_decoding_not_at_batch_end(make_engine) -> None:
    engine = make_engine(FakeBackend(step_s=0.03, token_chars=1))
    arrivals: list[float] = []
    async for event in engine.stream(request("say:abcdefgh")):
        if isinstance(event, TextDelta):
            arrivals.append(time.monotonic())
    assert len(arrivals) == 8
    # Spread over the decode time (~8 x 30 ms), not delivered in one burst at the end.
    assert arrivals[-1] - arrivals[0] > 0.1


async def test_full_queue_refuses_at_once(make_engine) -> None:
    backend = FakeBackend(step_s=0.02)
    engine = make_engine(backend, max_batch_size=1, max_queue=1, max_wait_s=0.0)
    running = asyncio.create_task(engine.complete(request("say:" + "x" * 40)))
    await wait_until(lambda: backend.batch_sizes)  # the first request is being decoded
    queued = asyncio.create_task(engine.complete(request("say:second")))
    await wait_until(lambda: engine.queue_depth == 1)
    with pytest.raises(QueueFullError) as info:
        engine.submit(request("say:third"))
    assert info.value.status_code == 503 and info.value.headers()["Retry-After"]
    assert (await queued).text == "second"
    assert (await running).finish_reason == "stop"


@pytest.mark.parametrize("token_chars", [1, 2, 3, 5])
async def test_stop_string_across_token_boundaries(make_engine, token_chars: int) -> None:
    engine = make_engine(FakeBackend(step_s=0.001, token_chars=token_chars))
    reply = "say:one ab two abSTOP three STOP four"
    deltas = [e.text async for e in engine.stream(request(reply, stop=["STOP"])) if isinstance(e, TextDelta)]
    assert "".join(deltas) == "one ab two ab"
    assert all("S" not in d for d in deltas)  # a possible partial match is never shown early
    completion = await engine.complete(request(reply, stop=["STOP"]))
    assert completion.text == "one ab two ab" and completion.finish_reason == "stop"


async def test_held_back_partial_match_is_released_when_it_does_not_match(make_engine) -> None:
    engine = make_engine(FakeBackend(step_s=0.001, token_chars=1))
    events = [e async for e in engine.stream(request("say:xx ab! ab", stop=["abc"]))]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "xx ab! ab"  # the trailing "ab" was held back, then released at the end
    final = events[-1]
    assert isinstance(final, Finished) and final.finish_reason == "stop"


async def test_earliest_of_several_stop_strings_wins(make_engine) -> None:
    engine = make_engine(FakeBackend(step_s=0.001, token_chars=4))
    completion = await engine.complete(request("say:alpha beta gamma", stop=["gamma", "beta"]))
    assert completion.text == "alpha "


async def test_stop_string_stops_the_backend_decoding_that_row(make_engine) -> None:
    backend = FakeBackend(step_s=0.002, token_chars=1)
    engine = make_engine(backend)
    req = request("say:ab|" + "z" * 200, stop=["|"])
    completion = await engine.complete(req)
    assert completion.text == "ab"
    assert backend.decode_steps[req.request_id] <= 4  # not the 200 z's after the stop


async def test_cancelled_stream_stops_decoding(make_engine) -> None:
    backend = FakeBackend(step_s=0.01, token_chars=1)
    engine = make_engine(backend)
    req = request("say:" + "y" * 300)
    stream = engine.stream(req)
    received = 0
    async for event in stream:
        received += isinstance(event, TextDelta)
        if received == 5:
            break
    await stream.aclose()
    await wait_until(lambda: req.request_id in backend.cancel_seen_at)
    steps_at_cancel = backend.decode_steps[req.request_id]
    await asyncio.sleep(0.1)
    assert backend.decode_steps[req.request_id] == steps_at_cancel  # no decoding after the cancel
    assert steps_at_cancel < 20


async def test_backend_exception_fails_every_request_of_the_batch(make_engine) -> None:
    engine = make_engine(FakeBackend(step_s=0.001), max_wait_s=0.1)
    results = await asyncio.gather(
        engine.complete(request("say:explode")), engine.complete(request("say:fine")),
        return_exceptions=True,
    )
    assert all(isinstance(r, BackendError) for r in results), results
    assert "exploded" in str(results[0])
    with pytest.raises(BackendError):
        async for _ in engine.stream(request("say:explode")):
            pass
    assert (await engine.complete(request("say:still alive"))).text == "still alive"


async def test_one_failed_row_does_not_fail_its_batch(make_engine) -> None:
    engine: Engine = make_engine(FakeBackend(step_s=0.001), max_wait_s=0.1)
    bad, good = await asyncio.gather(
        engine.complete(request("say:badrow")), engine.complete(request("say:good")), return_exceptions=True
    )
    assert isinstance(bad, InvalidRequestError)
    assert isinstance(good, Completion) and good.text == "good"


class ForgetfulBackend:
    """Returns without calling finish: the caller must get an error, not wait forever."""

    model_id = "forgetful"

    def load(self) -> None: ...
    def warmup(self) -> None: ...

    def generate(self, batch: Sequence[GenerationRequest], sink: BatchSink) -> None:
        sink.emit(0, "partial")


async def test_unfinished_request_fails_instead_of_hanging(make_engine) -> None:
    engine = make_engine(ForgetfulBackend())
    with pytest.raises(BackendError, match="without finishing"):
        await asyncio.wait_for(engine.complete(request("hi")), 2)


async def test_usage_confidence_reasoning_and_length(make_engine) -> None:
    engine = make_engine(FakeBackend(step_s=0.001, confidence=0.8))
    completion = await engine.complete(request("say:abcdefgh", max_tokens=2, thinking=True))
    assert completion.reasoning_text == "thinking"
    assert completion.text == "ab"  # the fake counts its thinking token against max_tokens
    assert completion.finish_reason == "length"
    assert completion.completion_tokens == 2 and completion.prompt_tokens == 7
    assert completion.confidence == 0.8
    assert completion.time_to_first_token_s is not None and completion.time_to_first_token_s >= 0


class JsonBackend:
    """Writes a whole JSON answer and reports it complete, as a grammar-constrained row does."""

    model_id = "json"

    def load(self) -> None: ...
    def warmup(self) -> None: ...

    def generate(self, batch: Sequence[GenerationRequest], sink: BatchSink) -> None:
        for index in range(len(batch)):
            for piece in ('{"a": ', '"x}y"', "}"):
                sink.emit(index, piece)
            sink.finish(index, finish_reason="stop", prompt_tokens=1, completion_tokens=3,
                        structured={"status": "complete"})


async def test_a_stop_string_that_cuts_a_json_answer_marks_it_incomplete(make_engine) -> None:
    engine = make_engine(JsonBackend())
    whole = await engine.complete(request("json"))
    assert whole.text == '{"a": "x}y"}' and whole.structured == {"status": "complete"}
    cut = await engine.complete(request("json", stop=["}"]))
    assert cut.text == '{"a": "x' and cut.finish_reason == "stop"
    assert cut.structured is not None and cut.structured["status"] == "incomplete"
    assert cut.structured["reason"] == "stop_string"


async def test_engine_refuses_work_when_not_running() -> None:
    engine = Engine(FakeBackend(), max_batch_size=1, max_wait_s=0, max_queue=4)
    with pytest.raises(NotReadyError):
        engine.submit(request("hi"))
    engine.start()
    engine.stop()
    with pytest.raises(NotReadyError):
        engine.submit(request("hi"))


async def test_the_model_is_loaded_warmed_up_and_run_on_one_thread() -> None:
    """One thread runs the model (OpenMP keeps a team per thread: see modelserver.engine)."""
    backend = FakeBackend()
    engine = Engine(backend, max_batch_size=2, max_wait_s=0, max_queue=4)
    try:
        await engine.prepare(backend.load)
        assert await engine.prepare(lambda: "warm") == "warm"  # a job's result reaches its caller
        await engine.prepare(backend.warmup)
        with pytest.raises(NotReadyError):  # prepared, not yet serving
            engine.submit(request("hi"))
        engine.start()
        assert (await engine.complete(request("say:ok"))).text == "ok"
        assert set(backend.threads) == {"load", "warmup", "generate"}
        assert len(set(backend.threads.values())) == 1
        assert threading.get_ident() not in backend.threads.values()
        with pytest.raises(RuntimeError, match="before start"):
            await engine.prepare(backend.load)
    finally:
        engine.stop()


async def test_a_failed_preparation_reaches_its_caller_and_the_engine_still_stops() -> None:
    engine = Engine(FakeBackend(), max_batch_size=1, max_wait_s=0, max_queue=4)

    def broken() -> None:
        raise OSError("no weights at /models/x")

    with pytest.raises(OSError, match="no weights"):
        await engine.prepare(broken)
    started = time.monotonic()
    await asyncio.to_thread(engine.stop)  # never started serving: the thread ends at once
    assert time.monotonic() - started < 1.0 and not engine.running


async def test_stop_fails_waiting_requests_and_cancels_the_running_batch() -> None:
    backend = FakeBackend(step_s=0.01, token_chars=1)
    engine = Engine(backend, max_batch_size=1, max_wait_s=0, max_queue=8)
    engine.start()
    running_request = request("say:" + "r" * 500)
    running = asyncio.create_task(engine.complete(running_request))
    await wait_until(lambda: backend.batch_sizes)
    waiting = asyncio.create_task(engine.complete(request("say:never")))
    await wait_until(lambda: engine.queue_depth == 1)
    started = time.monotonic()
    await asyncio.to_thread(engine.stop)
    assert time.monotonic() - started < 1.0  # the running row was cancelled, not decoded to the end
    with pytest.raises(NotReadyError, match="shutting down"):
        await asyncio.wait_for(waiting, 2)
    assert (await asyncio.wait_for(running, 2)).finish_reason == "stop"
    assert backend.decode_steps[running_request.request_id] < 100


class JoiningBackend:
    """A continuous-batching backend: admits queued requests between steps until told to end.

    Each row decodes ``steps`` tokens; the batch keeps polling ``sink.admit`` even when it is
    empty, so one batch serves every request until ``end`` is set (steady load, never ends).
    It keeps nothing of a finished row, as a real backend must not.
    """

    model_id = "joining"

    def __init__(self, *, steps: int = 2, step_s: float = 0.001) -> None:
        self.steps = steps
        self.step_s = step_s
        self.end = threading.Event()
        self.held: list[int] = []
        """How many rows the engine's sink held at each step."""

    def load(self) -> None: ...
    def warmup(self) -> None: ...

    def generate(self, batch: Sequence[GenerationRequest], sink: BatchSink) -> None:
        remaining = dict.fromkeys(range(len(batch)), self.steps)
        next_index = len(batch)
        while remaining or not self.end.is_set():
            for index in list(remaining):
                if remaining[index] == 0:
                    sink.finish(index, finish_reason="length", prompt_tokens=1, completion_tokens=self.steps)
                    del remaining[index]
                else:
                    sink.emit(index, "x")
                    remaining[index] -= 1
            self.held.append(len(sink.live_rows()))  # type: ignore[attr-defined]
            joined = len(sink.admit(len(remaining)))  # type: ignore[attr-defined]
            remaining.update(dict.fromkeys(range(next_index, next_index + joined), self.steps))
            next_index += joined
            time.sleep(self.step_s)


class TracedRequest(GenerationRequest):
    """A request a weak reference can watch (the real one has slots and no ``__weakref__``)."""


async def test_a_batch_that_never_ends_holds_only_its_live_requests(make_engine) -> None:
    # Steady load: 200 short requests join one running batch over time. The engine must let
    # go of each finished request at once, not when the batch ends (it never does here).
    backend = JoiningBackend()
    engine = make_engine(backend, max_batch_size=4, max_wait_s=0.0)
    served: list[weakref.ref[GenerationRequest]] = []
    try:
        for wave in range(25):
            hello = [ChatMessage(role="user", content="hi")]
            requests = [TracedRequest(f"w{wave}r{i}", hello, SamplingParams(max_tokens=2)) for i in range(8)]
            served += [weakref.ref(r) for r in requests]
            answers = await asyncio.gather(*(engine.complete(r) for r in requests))
            assert [a.text for a in answers] == ["xx"] * 8
            del requests, answers
        gc.collect()
        alive = [ref for ref in served if ref() is not None]
        assert engine.batches_run == 1  # still the first batch: it has served all 200
        # Only the batch's first requests (the backend's own ``batch`` argument) may remain.
        assert len(alive) <= 4, f"{len(alive)} of 200 finished requests are still held"
        assert max(backend.held) <= 4
    finally:
        backend.end.set()
    assert engine.rows_joined >= 196


async def test_a_failing_on_batch_hook_fails_its_batch_and_the_worker_goes_on(make_engine) -> None:
    calls: list[int] = []

    def on_batch(size: int) -> None:
        calls.append(size)
        if len(calls) == 1:
            raise RuntimeError("metrics backend down")

    engine = make_engine(FakeBackend(step_s=0.001), on_batch=on_batch)
    with pytest.raises(BackendError, match="bookkeeping failed: RuntimeError: metrics backend down"):
        await asyncio.wait_for(engine.complete(request("say:first")), 2)
    assert engine.running
    assert (await asyncio.wait_for(engine.complete(request("say:second")), 2)).text == "second"
    assert calls == [1, 1]
