"""The interface between the shared serving runtime and a model backend.

The engine (``engine.py``) owns queueing, batch forming, streaming delivery, stop
strings and cancellation; a backend owns only the model: it loads, warms up, and runs
one batch of requests to completion in a worker thread, reporting text as it decodes
through a :class:`BatchSink`. Backends are looked up by name in each service's
dispatch table (``vision.backends.BACKENDS``, ``reasoner.backends.BACKENDS``).

Optional: a backend may define ``check_request(request: GenerationRequest) -> None``; the
engine calls it before queueing, so a request the backend cannot honour (e.g. an
unsupported ``response_format``) is refused with a 4xx without touching a batch.

Optional: a backend that can call tools exposes ``tool_format`` (a
:class:`~modelserver.tools.ToolFormat`, the syntax its model writes calls in); it then
serves ``GenerationRequest.tools`` and its raw text is split into ``content`` and
``tool_calls`` by the routes. A request with tools to a backend without it is a 400.

Optional: the engine's sink has ``admit(running: int) -> list[GenerationRequest]``; a
backend that can add rows to a batch already decoding calls it between steps and serves
the returned requests too (their indices follow the batch's, in order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from flashsight_common.schemas import ChatMessage

from modelserver.tools.request import ToolRequest


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-request decoding parameters; ``temperature == 0`` means greedy."""

    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(slots=True)
class GenerationRequest:
    """One chat request as the backend sees it (images are ``data:`` URLs in ``messages``)."""

    request_id: str
    messages: list[ChatMessage]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    response_format: dict[str, Any] | None = None
    enable_thinking: bool = False
    tools: ToolRequest | None = None
    """The functions the model may call (None: answer in text); see :mod:`modelserver.tools`."""


class BatchSink(Protocol):
    """What a backend reports to while it runs a batch (indices are positions in the batch)."""

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        """Deliver newly decoded text for request ``index`` (``reasoning`` → ``reasoning_content``)."""

    def finish(
        self,
        index: int,
        *,
        finish_reason: str,
        prompt_tokens: int,
        completion_tokens: int,
        confidence: float | None = None,
        structured: dict[str, str] | None = None,
    ) -> None:
        """Request ``index`` is done: ``"stop"`` (EOS / stop string) or ``"length"``.

        ``confidence`` (0..1) is optional: e.g. ocr-lite's mean recognition score, or a
        generative backend's mean token probability; it is reported as ``confidence``.
        ``structured`` is given for answers decoded under a ``response_format`` grammar:
        ``{"status": "complete"}``, or ``"incomplete"`` with a ``reason`` and a ``message``
        (see :func:`modelserver.structured.completeness`); it is reported as ``structured_output``.
        """

    def fail(self, index: int, error: Exception) -> None:
        """Request ``index`` cannot be served (e.g. its image is unreadable): fail only that row.

        Use instead of ``finish``; a ``ModelServerError`` keeps its HTTP status, anything
        else becomes a 500 ``BackendError``. Raising from ``generate`` fails the whole batch.
        """

    def is_cancelled(self, index: int) -> bool:
        """True once the caller went away or a stop string matched: stop decoding that row."""


class DiscardSink:
    """A :class:`BatchSink` that throws output away and raises errors: warm-ups and benchmarks."""

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        pass

    def finish(self, index: int, **usage: Any) -> None:
        pass

    def fail(self, index: int, error: Exception) -> None:
        raise error

    def is_cancelled(self, index: int) -> bool:
        return False


@runtime_checkable
class Backend(Protocol):
    """A model the runtime can serve."""

    model_id: str
    """The id reported in every response: the model that really answers."""

    def load(self) -> None:
        """Load weights (blocking; called once in a thread at start-up, progress logged)."""

    def warmup(self) -> None:
        """Run one small generation so the first real request is not the slow one."""

    def generate(self, batch: Sequence[GenerationRequest], sink: BatchSink) -> None:
        """Run ``batch`` to completion, calling ``sink.finish`` exactly once per request."""
