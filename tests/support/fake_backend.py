"""A scripted model backend for tests: decodes a known reply a few characters per step.

It behaves like a real batched backend (one decode step advances every live row, with a
short sleep so streaming, batching and cancellation are observable) and records what
it saw: batch sizes, decode steps per request, and the step at which it noticed a cancel.

The reply to the last user message ``text`` is ``"echo: " + text``, unless ``text``
starts with ``say:`` (then exactly the rest). Magic words: ``explode`` makes
``generate`` raise; ``badrow`` fails only that row; ``slowload`` is for load tests.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence

from modelserver.backend import BatchSink, GenerationRequest
from modelserver.errors import InvalidRequestError, UnsupportedParameterError


def reply_for(request: GenerationRequest) -> str:
    """What the fake model answers to ``request``."""
    text = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
    return text.removeprefix("say:") if text.startswith("say:") else f"echo: {text}"


def split_tokens(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class FakeBackend:
    """A backend whose output and timing tests can predict."""

    def __init__(
        self, *, model_id: str = "fake-model", step_s: float = 0.01, token_chars: int = 2,
        load_s: float = 0.0, warmup_s: float = 0.0, confidence: float | None = None,
        supports_json: bool = False,
    ) -> None:
        self.model_id = model_id
        self.step_s = step_s
        self.token_chars = token_chars
        self.load_s = load_s
        self.warmup_s = warmup_s
        self.confidence = confidence
        self.supports_json = supports_json
        self.loaded = False
        self.warmed = False
        self.batch_sizes: list[int] = []
        self.decode_steps: dict[str, int] = defaultdict(int)
        """request_id → number of decode steps spent on it."""
        self.cancel_seen_at: dict[str, int] = {}
        """request_id → decode step at which ``sink.is_cancelled`` was first seen true."""
        self.lock = threading.Lock()
        self.threads: dict[str, int] = {}
        """``load`` / ``warmup`` / ``generate`` → the thread that last ran it."""

    def load(self) -> None:
        self.threads["load"] = threading.get_ident()
        time.sleep(self.load_s)
        self.loaded = True

    def warmup(self) -> None:
        self.threads["warmup"] = threading.get_ident()
        time.sleep(self.warmup_s)
        self.warmed = True

    def check_request(self, request: GenerationRequest) -> None:
        if request.response_format is not None and not self.supports_json:
            raise UnsupportedParameterError(
                "response_format is not supported by the fake backend", param="response_format"
            )

    def generate(self, batch: Sequence[GenerationRequest], sink: BatchSink) -> None:
        self.threads["generate"] = threading.get_ident()
        self.batch_sizes.append(len(batch))
        if any("explode" in reply_for(r) for r in batch):
            raise RuntimeError("the fake model exploded")
        plans: list[list[str]] = []
        for request in batch:
            tokens = split_tokens(reply_for(request), self.token_chars)
            if request.enable_thinking:
                tokens = ["<r>thinking", *tokens]
            plans.append(tokens)
        emitted = [0] * len(batch)
        live = set(range(len(batch)))
        for index, request in enumerate(batch):
            if "badrow" in reply_for(request):
                sink.fail(index, InvalidRequestError("the fake backend refuses 'badrow'"))
                live.discard(index)
        while live:
            for index in sorted(live):
                request = batch[index]
                if sink.is_cancelled(index):
                    self.cancel_seen_at.setdefault(request.request_id, self.decode_steps[request.request_id])
                    self._finish(sink, index, "stop", emitted[index])
                    live.discard(index)
                    continue
                if emitted[index] >= min(len(plans[index]), request.sampling.max_tokens):
                    reason = "stop" if emitted[index] >= len(plans[index]) else "length"
                    self._finish(sink, index, reason, emitted[index])
                    live.discard(index)
                    continue
                token = plans[index][emitted[index]]
                if token.startswith("<r>"):
                    sink.emit(index, token[3:], reasoning=True)
                else:
                    sink.emit(index, token)
                emitted[index] += 1
                with self.lock:
                    self.decode_steps[request.request_id] += 1
            time.sleep(self.step_s)

    def _finish(self, sink: BatchSink, index: int, reason: str, completion_tokens: int) -> None:
        sink.finish(index, finish_reason=reason, prompt_tokens=7, completion_tokens=completion_tokens,
                    confidence=self.confidence)
