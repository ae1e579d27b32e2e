"""Property: a grammar-constrained answer that stops is strict JSON that validates, on both services.

Over many seeds, temperatures (greedy, 0.8, 1.3, nucleus) and schemas (strings, numbers,
enums, nested objects, arrays, ``json_object``), the real backends decode on the tiny
random-weight checkpoints (vision ``glm`` on GLM-4.6V-tiny, reasoner ``transformers`` on
GLM-4-chat-tiny) and on the embedded SmolLM2 reasoner. Random weights write the strangest
text a grammar can be asked to hold (markup tokens, control bytes, broken UTF-8), which is
the point. For every answer:

* ``stop`` → ``json.loads`` (strict: no raw control characters) parses the content, the
  value validates against the schema, ``structured_output`` says ``complete``, and no text
  went to ``reasoning_content``;
* ``length`` → ``structured_output`` says ``incomplete`` with reason ``length`` (never
  silently invalid JSON).

Before the fix, vision answers that stopped lost the rest of their JSON to
``reasoning_content`` whenever the grammar let a ``<think>`` token into a string (2 to 4
in 19 here); see :mod:`modelserver.structured`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
from flashsight_common.schemas import ChatMessage
from modelserver.backend import GenerationRequest, SamplingParams
from PIL import Image
from reasoner.backends.transformers_backend import TransformersBackend
from reasoner.config import ReasonerSettings
from vision.backends.glm import GlmBackend
from vision.config import VisionSettings

from tests.support.tiny_models import GLM4_CHAT_TINY, GLM46V_TINY, tiny_model_path
from tests.vision.test_glm_backend import image_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": sorted(properties)}


SCHEMAS: dict[str, dict[str, Any]] = {
    "strings": _object({"invoice_number": {"type": "string"}, "note": {"type": "string"}}),
    "numbers": _object(
        {"count": {"type": "integer"}, "total": {"type": "number"}, "paid": {"type": "boolean"}}
    ),
    "enums": _object(
        {"status": {"enum": ["paid", "open", "void"]}, "currency": {"type": "string", "enum": ["USD", "CNY"]}}
    ),
    "nested": _object(
        {
            "customer": _object({"name": {"type": "string"}, "vip": {"type": "boolean"}}),
            "id": {"type": "integer"},
        }
    ),
    "arrays": _object({
        "tags": {"type": "array", "items": {"type": "string"}},
        "lines": {"type": "array", "items": _object({"sku": {"type": "string"}, "qty": {"type": "integer"}})},
    }),
}
# (temperature, top_p): greedy, the two temperatures, and nucleus sampling.
SAMPLERS: tuple[tuple[float, float], ...] = ((0.0, 1.0), (0.8, 1.0), (1.3, 1.0), (1.0, 0.9))


def response_formats() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, response_format, schema to validate with) for every case, json_object included."""
    formats = [
        (name, {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}, schema)
        for name, schema in SCHEMAS.items()
    ]
    return [*formats, ("json_object", {"type": "json_object"}, {"type": "object"})]


@dataclass
class Sink:
    """Collects each row's content, reasoning and finish report."""

    content: dict[int, str] = field(default_factory=dict)
    reasoning: dict[int, str] = field(default_factory=dict)
    finished: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: dict[int, Exception] = field(default_factory=dict)

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        target = self.reasoning if reasoning else self.content
        target[index] = target.get(index, "") + text

    def finish(self, index: int, **usage: Any) -> None:
        self.finished[index] = usage

    def fail(self, index: int, error: Exception) -> None:
        self.failed[index] = error

    def is_cancelled(self, index: int) -> bool:
        return False


@dataclass
class Tally:
    stopped: int = 0
    cut: int = 0


def check_batch(
    generate: Callable[[Sequence[GenerationRequest], Sink], None],
    make_request: Callable[[SamplingParams, dict[str, Any]], GenerationRequest],
    *,
    seeds: Sequence[int],
    max_tokens: int,
) -> Tally:
    """Run every (seed, sampler) as one batch holding every response format; check each answer."""
    cases = response_formats()
    tally = Tally()
    for seed, (temperature, top_p) in itertools.product(seeds, SAMPLERS):
        batch = [
            make_request(
                SamplingParams(
                    max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed * 31 + k
                ),
                response_format,
            )
            for k, (_, response_format, _) in enumerate(cases)
        ]
        sink = Sink()
        generate(batch, sink)
        assert not sink.failed, sink.failed
        for k, (name, _, schema) in enumerate(cases):
            where = f"seed {seed}, temperature {temperature}, top_p {top_p}, {name}"
            content, usage = sink.content.get(k, ""), sink.finished[k]
            report = usage.get("structured")
            assert not sink.reasoning.get(k), f"{where}: JSON went to reasoning: {sink.reasoning[k]!r}"
            if usage["finish_reason"] == "stop":
                tally.stopped += 1
                try:
                    value = json.loads(content)  # strict: a raw control character fails here
                except ValueError as exc:
                    pytest.fail(f"{where}: stopped but is not JSON ({exc}): {content!r}")
                jsonschema.validate(value, schema)
                assert report == {"status": "complete"}, (where, report)
            else:
                tally.cut += 1
                assert usage["finish_reason"] == "length", (where, usage)
                assert report is not None and report["status"] == "incomplete", (where, report)
                assert report["reason"] == "length" and "max_tokens" in report["message"], report
    return tally


def chat_request(prompt: str) -> Callable[[SamplingParams, dict[str, Any]], GenerationRequest]:
    def make(sampling: SamplingParams, response_format: dict[str, Any]) -> GenerationRequest:
        messages = [ChatMessage(role="user", content=prompt)]
        return GenerationRequest("prop", messages, sampling, response_format=response_format)

    return make


def test_vision_glm_constrained_answers_that_stop_always_parse_and_validate() -> None:
    settings = VisionSettings(backend="glm", model=str(tiny_model_path(GLM46V_TINY)), device="cpu")
    backend = GlmBackend(settings)
    backend.load()
    image = image_url(Image.effect_noise((64, 64), 60).convert("RGB"))

    def make(sampling: SamplingParams, response_format: dict[str, Any]) -> GenerationRequest:
        message = ChatMessage(
            role="user",
            content=[
                {"type": "image_url", "image_url": {"url": image}},
                {"type": "text", "text": "Invoice as JSON"},
            ],
        )
        # Thinking on: a constrained answer must still be content, never reasoning.
        return GenerationRequest(
            "prop", [message], sampling, response_format=response_format, enable_thinking=True
        )

    tally = check_batch(backend.generate, make, seeds=range(3), max_tokens=64)
    assert tally.stopped >= 20, tally  # the property is not vacuous: most answers stop


def test_reasoner_tiny_glm4_constrained_answers_that_stop_always_parse_and_validate() -> None:
    settings = ReasonerSettings(model=str(tiny_model_path(GLM4_CHAT_TINY)), device="cpu")
    backend = TransformersBackend(settings)
    backend.load()
    make = chat_request("Invoice INV-7 as JSON")
    tally = check_batch(backend.generate, make, seeds=range(3), max_tokens=64)
    assert tally.stopped >= 20, tally


def test_embedded_smollm2_constrained_answers_that_stop_always_parse_and_validate() -> None:
    backend = TransformersBackend(ReasonerSettings(model="embedded:smollm2", device="cpu"))
    backend.load()
    prompt = "Invoice INV-2024-0042 from ACME, 3 items, total 1280.50 USD, paid. Answer in JSON."
    tally = check_batch(backend.generate, chat_request(prompt), seeds=range(1), max_tokens=48)
    assert tally.stopped >= 5, tally
