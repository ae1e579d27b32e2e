"""Continuous batching on the glm backend (tiny GLM-4.6V): a request that joins a running batch
decodes exactly the tokens it decodes alone, on the dynamic cache and on the static one.

Greedy tokens are the property that catches wrong M-RoPE positions: a joining row whose
offset (``rope_delta``) were lost, or taken from another row, would see other rotary
positions and, with these random weights, pick other tokens within a few steps (the last
test shows it does). Images of several sizes (so every row has its own offset), prompts of
several lengths, and join moments from the first step to late ones; seeded sampling,
json_schema, json_object and tool-call grammars ride along as joiners too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from flashsight_common.schemas import ChatMessage
from flashsight_common.toolcalls import FunctionDefinition
from modelserver import decoding
from modelserver.backend import GenerationRequest, SamplingParams
from modelserver.engine import Engine, Finished, TextDelta
from modelserver.errors import InvalidRequestError
from modelserver.tools.request import ToolRequest
from PIL import Image
from vision import mrope
from vision.backends.glm import GlmBackend
from vision.config import VisionSettings

from tests.support.tiny_models import GLM46V_TINY, tiny_model_path
from tests.vision.test_glm_backend import RecordingSink, image_request

SCHEMA = {
    "type": "object",
    "properties": {
        "invoice_no": {"type": "string", "maxLength": 8},
        "currency": {"enum": ["EUR", "USD", "CNY"]},
        "paid": {"type": "boolean"},
    },
    "required": ["invoice_no", "currency", "paid"],
}
WEATHER = FunctionDefinition(
    name="get_weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def noise(width: int, height: int, seed: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(height, width, 3, generator=generator) * 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels, "RGB")


def ask(image: Image.Image | None, question: str, *, max_tokens: int, **kwargs: Any) -> GenerationRequest:
    """A user turn with ``image`` (None: text only); greedy unless ``temperature``/``seed`` say otherwise."""
    sampling = SamplingParams(
        max_tokens=max_tokens, temperature=kwargs.pop("temperature", 0.0), seed=kwargs.pop("seed", None)
    )
    if image is None:
        return GenerationRequest(
            request_id=question,
            messages=[ChatMessage(role="user", content=question)],
            sampling=sampling,
            **kwargs,
        )
    request = image_request(image, question, max_tokens=max_tokens, **kwargs)
    request.sampling = sampling
    return request


def requests() -> dict[str, GenerationRequest]:
    """Images from 56×56 (4 tokens) to 320×240 (~100 tokens), questions from one word to a sentence."""
    return {
        "wide": ask(noise(200, 120, 2), "Describe this picture in detail, please.", max_tokens=30),
        "small": ask(noise(56, 56, 1), "Hi?", max_tokens=30),
        "large": ask(
            noise(320, 240, 1), "Read every number you can see in the picture and add them up.", max_tokens=30
        ),
        "tall": ask(noise(90, 300, 1), "What?", max_tokens=30),
        "seeded": ask(noise(140, 140, 5), "Guess.", max_tokens=24, temperature=0.9, seed=7),
        "text": ask(None, "Say something about invoices.", max_tokens=24),
        "schema": ask(
            noise(120, 80, 6),
            "Invoice fields",
            max_tokens=80,
            response_format={"type": "json_schema", "json_schema": {"name": "inv", "schema": SCHEMA}},
        ),
        "object": ask(noise(100, 100, 7), "JSON", max_tokens=80, response_format={"type": "json_object"}),
        "tool": ask(
            noise(160, 90, 8),
            "Weather where this was taken?",
            max_tokens=40,
            tools=ToolRequest(offered=(WEATHER,), mode="required", parallel=False),
        ),
    }


REQUESTS = requests()

# (first batch, {join call number: joiners}): a join call happens at every step boundary.
SCENARIOS = {
    "one-by-one": (["wide"], {1: ["small"], 3: ["large"], 6: ["tall"]}),
    "together-late": (["small", "text"], {2: ["large", "wide"], 12: ["seeded"]}),
    "grammars": (["tall"], {1: ["schema"], 4: ["object", "tool"]}),
}


class JoiningSink(RecordingSink):
    """A sink whose ``admit`` hands over scripted joiners from given step boundaries on.

    Like the engine, it never fills more than ``slots`` rows: a joiner that finds the
    batch full waits for a later step.
    """

    def __init__(self, size: int, arrivals: dict[int, list[GenerationRequest]], *, slots: int = 4) -> None:
        super().__init__(size)
        self.arrivals = arrivals
        self.slots = slots
        self.waiting: list[GenerationRequest] = []
        self.calls = 0
        self.running: list[int] = []

    def admit(self, running: int) -> list[GenerationRequest]:
        self.calls += 1
        self.running.append(running)
        self.waiting += self.arrivals.get(self.calls, [])
        taken, self.waiting = self.waiting[: self.slots - running], self.waiting[self.slots - running :]
        return taken


def load(path: Path, **settings: Any) -> GlmBackend:
    options: dict[str, Any] = {"backend": "glm", "model": str(path), "device": "cpu", **settings}
    backend = GlmBackend(VisionSettings(**options))
    backend.load()
    backend.warmup()
    return backend


@pytest.fixture(scope="module")
def backends() -> dict[str, GlmBackend]:
    path = tiny_model_path(GLM46V_TINY)
    # The static cache run eagerly on the CPU (what CUDA graphs replay on a GPU); 512 columns,
    # so the window is compacted once the long tool prompt has left.
    return {"dynamic": load(path), "static": load(path, static_kv="on", kv_cache_max_len=512)}


@pytest.fixture
def token_ids(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[int, list[int]]]:
    """Each decode row's token ids, captured from the loop's ``on_result``."""
    recorded: dict[int, list[int]] = {}
    real = decoding.decode_batch

    def recording(*args: Any, **kwargs: Any) -> None:
        kwargs["on_result"] = lambda index, result: recorded.__setitem__(index, list(result.token_ids))
        real(*args, **kwargs)

    monkeypatch.setattr(decoding, "decode_batch", recording)
    yield recorded


_alone: dict[tuple[str, str], tuple[list[int], str, dict[str, Any]]] = {}


def alone(
    backend: GlmBackend, kind: str, name: str, token_ids: dict[int, list[int]]
) -> tuple[list[int], str, dict[str, Any]]:
    """``name`` served on its own (cached per backend): tokens, content, usage."""
    if (kind, name) not in _alone:
        token_ids.clear()
        sink = RecordingSink(1)
        backend.generate([REQUESTS[name]], sink)
        assert not sink.failed, sink.failed
        _alone[kind, name] = (token_ids[0], sink.content[0], sink.finished[0])
    return _alone[kind, name]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_a_joining_request_decodes_exactly_as_alone(
    backends: dict[str, GlmBackend], token_ids: dict[int, list[int]], kind: str, scenario: str
) -> None:
    backend = backends[kind]
    assert (backend.static_kv is not None) == (kind == "static")
    if backend.static_kv is not None:  # GLM-4.6V's text model runs the written-out step (fused_step)
        assert backend.static_kv.step_name == "fused"
    compactions = backend.static_kv.compactions if backend.static_kv is not None else 0
    first, arrivals = SCENARIOS[scenario]
    names = first + [name for _, joiners in sorted(arrivals.items()) for name in joiners]
    expected = [alone(backend, kind, name, token_ids) for name in names]
    token_ids.clear()
    sink = JoiningSink(
        len(names), {call: [REQUESTS[name] for name in joiners] for call, joiners in arrivals.items()}
    )
    backend.generate([REQUESTS[name] for name in first], sink)

    assert not sink.failed, sink.failed
    assert sink.calls >= max(arrivals) and not sink.waiting, "the batch ended before every joiner joined"
    assert max(sink.running) >= 2, "no joiner ever decoded beside another row"
    for index, name in enumerate(names):
        tokens, content, usage = expected[index]
        assert token_ids[index] == tokens, name  # greedy and seeded rows alike
        assert sink.content[index] == content, name
        got = dict(sink.finished[index])
        # Exact usage (prompt and completion tokens); the mean probability to float rounding.
        assert got.pop("confidence") == pytest.approx(usage["confidence"], rel=1e-5), name
        assert got == {key: value for key, value in usage.items() if key != "confidence"}, name
        assert usage["completion_tokens"] == len(tokens)
    if scenario == "grammars":  # each joiner decoded under its own grammar
        for name in ("schema", "object"):
            assert sink.finished[names.index(name)]["structured"] == {"status": "complete"}, name
        jsonschema.validate(json.loads(sink.content[names.index("schema")]), SCHEMA)
        assert isinstance(json.loads(sink.content[names.index("object")]), dict)
        assert "<tool_call>get_weather" in sink.content[names.index("tool")]
        if backend.static_kv is not None:  # rows moved in the cache while they decoded
            assert backend.static_kv.compactions > compactions


def test_the_rows_decode_long_enough_to_show_their_positions(
    backends: dict[str, GlmBackend], token_ids: dict[int, list[int]]
) -> None:
    # The property is only as strong as the answers are long: no joiner may stop at once.
    for name in ("wide", "small", "large", "tall"):
        tokens, _, usage = alone(backends["dynamic"], "dynamic", name, token_ids)
        assert len(tokens) >= 20 and usage["finish_reason"] == "length", (name, usage)


def test_a_joiner_that_lost_its_rope_offset_would_decode_differently(
    backends: dict[str, GlmBackend], token_ids: dict[int, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Proof that the test above can fail: with offsets dropped after prefill, the rows
    # with images decode other tokens than the rows served correctly alone.
    backend = backends["dynamic"]
    expected = [alone(backend, "dynamic", name, token_ids)[0] for name in ("wide", "large")]
    real_call = mrope.MropeModel.__call__

    def forgetful(self: mrope.MropeModel, *args: Any, **kwargs: Any) -> Any:
        out = real_call(self, *args, **kwargs)
        if getattr(out, "rope_deltas", None) is not None:
            out.rope_deltas = torch.zeros_like(out.rope_deltas)
        return out

    monkeypatch.setattr(mrope.MropeModel, "__call__", forgetful)
    token_ids.clear()
    backend.generate([REQUESTS["wide"]], JoiningSink(2, {2: [REQUESTS["large"]]}))
    assert [token_ids[0], token_ids[1]] != expected


async def test_joiners_stream_and_cancel_through_the_engine(
    backends: dict[str, GlmBackend], token_ids: dict[int, list[int]]
) -> None:
    # The real engine: a long answer runs; three requests arrive while it decodes and join
    # its batch (one batch in all). One joiner streams and its caller cancels after two
    # pieces: it stops early with what it had, and the other rows are untouched.
    backend = backends["dynamic"]
    long = ask(noise(90, 300, 1), "Hi?", max_tokens=300)  # runs to its limit: no EOS on the way
    engine = Engine(backend, max_batch_size=4, max_wait_s=0.0)
    engine.start()
    try:
        first = engine.submit(long)
        first_pieces = [await anext(first)]  # the batch is decoding
        cancelled = engine.submit(REQUESTS["tall"])
        complete = asyncio.ensure_future(engine.complete(REQUESTS["large"]))
        structured = asyncio.ensure_future(engine.complete(REQUESTS["schema"]))
        pieces: list[str] = []
        finished: Finished | None = None
        async for event in cancelled:
            if isinstance(event, TextDelta):
                pieces.append(event.text)
                if len(pieces) == 2:
                    cancelled.cancel()
            else:
                finished = event
        answers = await asyncio.gather(complete, structured)
        async for event in first:
            first_pieces.append(event.text if isinstance(event, TextDelta) else "")
    finally:
        engine.stop()
    assert engine.batches_run == 1 and engine.rows_joined == 3
    _, tall_content, tall_usage = alone(backend, "dynamic", "tall", token_ids)
    assert finished is not None and finished.finish_reason == "stop"
    assert 2 <= finished.completion_tokens < tall_usage["completion_tokens"]
    assert tall_content.startswith("".join(pieces))  # streamed as decoded, cut where cancelled
    for answer, name in zip(answers, ("large", "schema"), strict=True):
        _, content, usage = alone(backend, "dynamic", name, token_ids)
        assert (answer.text, answer.completion_tokens, answer.prompt_tokens) == (
            content, usage["completion_tokens"], usage["prompt_tokens"]
        ), name
    assert len(first_pieces) > 20  # the long answer streamed in many pieces, beside the joiners


def test_a_joiner_whose_image_does_not_fit_a_static_row_is_refused_alone(
    backends: dict[str, GlmBackend], token_ids: dict[int, list[int]]
) -> None:
    # The static cache's rows are 512 tokens here; an 800×600 image is ~610 tokens. It is
    # refused as a 400 naming the context (never an out-of-memory, never a broken batch),
    # and the row it tried to join decodes on as it would alone.
    backend = backends["static"]
    huge = ask(noise(800, 600, 9), "What?", max_tokens=8)
    expected = alone(backend, "static", "small", token_ids)[0]
    token_ids.clear()
    sink = JoiningSink(2, {2: [huge]})
    backend.generate([REQUESTS["small"]], sink)
    assert set(sink.failed) == {1} and set(sink.finished) == {0}
    error = sink.failed[1]
    assert isinstance(error, InvalidRequestError) and error.code == "context_length_exceeded", error
    assert token_ids[0] == expected
