"""The batching engine: a bounded queue in front of one worker thread that runs batches.

Written once for every backend. Callers (asyncio) submit a :class:`GenerationRequest`
and read :data:`Event` s; the worker thread collects up to ``max_batch_size`` requests,
waiting at most ``max_wait_s`` after the first, and calls ``backend.generate(batch, sink)``.
The sink hands each decoded piece of text to the caller's event loop as it arrives
(``loop.call_soon_threadsafe``), applies stop strings, and tells the backend which rows
to stop decoding (stop string matched, or the caller went away).

One thread runs the model: the backend is loaded and warmed up on the engine's own thread
(:meth:`Engine.prepare`) before it serves from it. Each thread that runs torch's CPU ops
keeps its own OpenMP team, and once the process holds more OpenMP workers than CPUs,
libgomp stops letting idle workers spin (they sleep and are woken for every parallel
region): on a 2-core CPU a model loaded in one thread decoded 1.3x slower in another
(27 vs 21 tok/s, ``docs/performance.md``, "Reasoner on the CPU").

Continuous batching: a backend that can add rows to a batch already decoding calls
``sink.admit(running)`` between steps; it gets the requests queued meanwhile (up to the
free slots of ``max_batch_size``), so a request that just missed a batch starts after one
step instead of after the whole batch. The sink forgets each row as soon as it finishes
or fails, so a batch that never ends holds its live rows only, not every request served.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from modelserver.backend import Backend, GenerationRequest
from modelserver.errors import BackendError, ModelServerError, NotReadyError, QueueFullError
from modelserver.stops import StopMatcher

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Newly decoded text; ``reasoning`` text belongs in ``reasoning_content``."""

    text: str
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class Finished:
    """The last event of a request."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    confidence: float | None = None
    time_to_first_token_s: float | None = None
    structured: dict[str, str] | None = None
    """Whether a ``response_format`` answer's JSON is whole (None for plain text)."""


Event = TextDelta | Finished


@dataclass(frozen=True, slots=True)
class _Failed:
    error: ModelServerError


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer, as :meth:`Engine.complete` returns it."""

    text: str
    reasoning_text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    confidence: float | None = None
    time_to_first_token_s: float | None = None
    structured: dict[str, str] | None = None


class _Row:
    """One submitted request's state, shared by the caller's loop and the worker thread."""

    __slots__ = (
        "cancelled", "done", "events", "first_token_at", "loop", "matcher", "request", "submitted_at",
    )

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.events: asyncio.Queue[Event | _Failed] = asyncio.Queue()
        self.matcher = StopMatcher(request.sampling.stop)
        # Plain bools: written by one thread, read by the other; the GIL makes that safe.
        self.cancelled = False
        self.done = False
        self.submitted_at = time.monotonic()
        self.first_token_at: float | None = None

    def push(self, item: Event | _Failed) -> None:
        if isinstance(item, TextDelta) and self.first_token_at is None:
            self.first_token_at = time.monotonic()
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the caller's loop is closed: nobody is listening any more
            self.cancelled = True

    def fail(self, error: ModelServerError) -> None:
        if not self.done:
            self.done = True
            self.push(_Failed(error))


class _Sink:
    """The :class:`~modelserver.backend.BatchSink` the worker passes to ``backend.generate``.

    Holds only the rows still being served: a row is released as soon as it finishes or
    fails, so a batch that never ends (requests keep joining under steady load) keeps
    the state of its live rows, not of every request it has served. A released index
    reads as done: ``is_cancelled`` is true, ``emit``/``finish``/``fail`` are no-ops.
    """

    def __init__(self, rows: Sequence[_Row], take: Callable[[int], list[_Row]]) -> None:
        self._rows: dict[int, _Row] = dict(enumerate(rows))
        self._next_index = len(rows)
        self._take = take

    def live_rows(self) -> list[_Row]:
        """The rows not yet released (a snapshot: safe to read from another thread)."""
        return list(self._rows.values())

    def admit(self, running: int) -> list[GenerationRequest]:
        """Queued requests that join the running batch (``running`` rows still decode).

        Their indices follow the last index handed out, in order.
        """
        joined = self._take(running)
        for row in joined:
            self._rows[self._next_index] = row
            self._next_index += 1
        return [row.request for row in joined]

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        row = self._row(index)
        if row is None or row.done or row.cancelled or not text:
            return
        if reasoning:  # stop strings apply to the answer, not to the model's thinking
            row.push(TextDelta(text, reasoning=True))
            return
        released = row.matcher.feed(text)
        if released:
            row.push(TextDelta(released))
        if row.matcher.matched:
            row.cancelled = True  # the backend stops decoding this row at its next step

    def finish(
        self, index: int, *, finish_reason: str, prompt_tokens: int, completion_tokens: int,
        confidence: float | None = None, structured: dict[str, str] | None = None,
    ) -> None:
        row = self._release(index)
        if row is None or row.done:
            return
        if row.matcher.matched:
            finish_reason = "stop"
            if structured is not None:  # the text was cut at the stop string, whatever the grammar saw
                structured = incomplete_by_stop_string()
        elif tail := row.matcher.flush():
            row.push(TextDelta(tail))
        row.done = True
        ttft = None if row.first_token_at is None else row.first_token_at - row.submitted_at
        row.push(Finished(finish_reason, prompt_tokens, completion_tokens, confidence, ttft, structured))

    def fail(self, index: int, error: Exception) -> None:
        row = self._release(index)
        if row is not None:
            row.fail(_as_model_server_error(error))

    def is_cancelled(self, index: int) -> bool:
        row = self._row(index)
        return row is None or row.cancelled or row.done

    def _row(self, index: int) -> _Row | None:
        """The live row at ``index``; None once released. An index never handed out is a bug."""
        if not 0 <= index < self._next_index:
            raise IndexError(f"batch index {index} out of range (0..{self._next_index - 1})")
        return self._rows.get(index)

    def _release(self, index: int) -> _Row | None:
        row = self._row(index)
        self._rows.pop(index, None)
        return row


class RequestHandle:
    """An async iterator over one submitted request's events; ``cancel()`` stops its row."""

    def __init__(self, row: _Row) -> None:
        self._row = row
        self._ended = False

    def cancel(self) -> None:
        self._row.cancelled = True

    def __aiter__(self) -> RequestHandle:
        return self

    async def __anext__(self) -> Event:
        if self._ended:
            raise StopAsyncIteration
        item = await self._row.events.get()
        if isinstance(item, _Failed):
            self._ended = True
            raise item.error
        if isinstance(item, Finished):
            self._ended = True
        return item


class Engine:
    """Queues requests and runs them through ``backend`` in batches on one worker thread."""

    def __init__(
        self, backend: Backend, *, max_batch_size: int = 4, max_wait_s: float = 0.01, max_queue: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._backend = backend
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._max_queue = max_queue
        self._on_batch = on_batch
        self._queue: queue.Queue[_Row] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._serving = False
        self._stopping = threading.Event()
        self._running: _Sink | None = None
        self.batch_sizes: Counter[int] = Counter()
        """How many batches of each size ran (size → count): for metrics and tests."""
        self.batches_run = 0
        """How many times ``backend.generate`` was called."""
        self.rows_joined = 0
        """Requests that joined a batch already decoding (continuous batching)."""

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch (not counting the batch running now)."""
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        alive = self._thread is not None and self._thread.is_alive()
        return self._serving and alive and not self._stopping.is_set()

    async def prepare(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (loading, warming up) on the engine's thread, before it serves; its result."""
        if self._serving:
            raise RuntimeError("engine already serving: prepare it before start()")
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        self._ensure_thread()
        return await asyncio.wrap_future(future)

    def start(self) -> None:
        """Serve requests from the engine's thread (after whatever :meth:`prepare` queued)."""
        if self._serving:
            raise RuntimeError("engine already started")
        self._serving = True
        self._jobs.put(None)
        self._ensure_thread()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop taking work, cancel running rows, fail queued requests, and join the worker."""
        self._stopping.set()
        self._jobs.put(None)  # a thread still waiting for preparation jobs goes on to see the stop
        running = self._running
        for row in running.live_rows() if running is not None else ():
            row.cancelled = True
        if self._thread is not None:
            self._thread.join(timeout)
        while True:
            try:
                row = self._queue.get_nowait()
            except queue.Empty:
                break
            row.fail(NotReadyError("the model service is shutting down"))

    def submit(self, request: GenerationRequest) -> RequestHandle:
        """Queue ``request`` (raises :class:`QueueFullError` at once when the queue is full)."""
        if not self.running:
            raise NotReadyError("the model engine is not running")
        check = getattr(self._backend, "check_request", None)
        if check is not None:  # optional: a backend can refuse a request before it is batched
            check(request)
        row = _Row(request, asyncio.get_running_loop())
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            raise QueueFullError(
                f"the model queue is full ({self._max_queue} requests waiting); retry shortly"
            ) from None
        return RequestHandle(row)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Yield the request's text deltas as they are decoded, then one :class:`Finished`."""
        handle = self.submit(request)
        try:
            async for event in handle:
                yield event
        finally:
            handle.cancel()

    async def complete(self, request: GenerationRequest) -> Completion:
        """Run the request to the end and return the whole answer."""
        handle = self.submit(request)
        try:
            return await collect(handle)
        finally:
            handle.cancel()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="modelserver-engine", daemon=True)
            self._thread.start()

    def _main(self) -> None:
        """The engine's thread: the preparation jobs in order, then (from ``None`` on) the batches."""
        while (job := self._jobs.get()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():  # its caller gave up waiting
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the awaiting caller
                future.set_exception(exc)
        self._work()

    def _work(self) -> None:
        while not self._stopping.is_set():
            batch = self._collect_batch()
            if batch:
                self._run_batch(batch)

    def _collect_batch(self) -> list[_Row]:
        try:
            first = self._queue.get(timeout=0.1)  # wake up now and then to notice stop()
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self._max_wait_s
        while len(batch) < self._max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
        for row in batch:
            if row.cancelled:  # the caller left while waiting: do not spend a batch slot on it
                row.done = True
        return [row for row in batch if not row.done]

    def _take_joiners(self, running: int) -> list[_Row]:
        """Up to the free batch slots' worth of queued requests, without waiting."""
        taken: list[_Row] = []
        while running + len(taken) < self._max_batch_size and not self._stopping.is_set():
            try:
                row = self._queue.get_nowait()
            except queue.Empty:
                break
            if row.cancelled:  # the caller left while waiting
                row.done = True
                continue
            taken.append(row)
        self.rows_joined += len(taken)
        return taken

    def _run_batch(self, rows: list[_Row]) -> None:
        size = len(rows)
        sink = _Sink(rows, self._take_joiners)
        self._running = sink
        try:
            self._record_batch(size)
            self._backend.generate([row.request for row in rows], sink)
        except Exception as exc:
            error = _as_model_server_error(exc)
            if not isinstance(exc, ModelServerError):
                logger.exception("backend %s failed on a batch of %d", self._backend.model_id, size)
            for row in sink.live_rows():
                row.fail(error)
        else:
            for row in sink.live_rows():
                row.fail(BackendError("the model backend returned without finishing this request"))
        finally:
            self._running = None

    def _record_batch(self, size: int) -> None:
        """Count the batch and report it; a failing metrics hook fails this batch, not the worker."""
        self.batches_run += 1
        self.batch_sizes[size] += 1
        if self._on_batch is None:
            return
        try:
            self._on_batch(size)
        except Exception as exc:
            logger.exception("the engine's on_batch hook failed")
            raise BackendError(
                f"the model engine's batch bookkeeping failed: {type(exc).__name__}: {exc}"
            ) from exc


def incomplete_by_stop_string() -> dict[str, str]:
    """The ``structured`` report of a JSON answer that a stop string cut short."""
    return {
        "status": "incomplete",
        "reason": "stop_string",
        "message": "a stop string ended the answer before its JSON was complete: the content does not parse",
    }


def _as_model_server_error(exc: Exception) -> ModelServerError:
    if isinstance(exc, ModelServerError):
        return exc
    return BackendError(f"the model backend failed: {type(exc).__name__}: {exc}")


async def collect(events: AsyncIterator[Event]) -> Completion:
    """Gather a stream of events into a :class:`Completion`."""
    text: list[str] = []
    reasoning: list[str] = []
    async for event in events:
        if isinstance(event, TextDelta):
            (reasoning if event.reasoning else text).append(event.text)
        else:
            return Completion(
                "".join(text), "".join(reasoning), event.finish_reason, event.prompt_tokens,
                event.completion_tokens, event.confidence, event.time_to_first_token_s, event.structured,
            )
    raise BackendError("the generation ended without a final event")
