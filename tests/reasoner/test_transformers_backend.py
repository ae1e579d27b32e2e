"""The transformers backend: start-up checks, text-only requests, and real decoding.

Decoding runs on the tiny GLM-4 chat checkpoint (``Glm4ForCausalLM``: the production
model's architecture, special tokens and chat template) and on the real embedded SmolLM2.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from flashsight_common.schemas import ChatMessage
from modelserver.backend import GenerationRequest, SamplingParams
from modelserver.errors import InvalidRequestError, UnsupportedParameterError
from reasoner.backends import BACKENDS
from reasoner.backends.transformers_backend import TransformersBackend
from reasoner.config import ReasonerSettings
from reasoner.errors import (
    ChatTemplateMissingError,
    CheckpointNotFoundError,
    ModelLoadError,
    TokenizerMissingError,
)
from reasoner.main import create_app

from devkit.processes import ThreadedServer
from tests.support.tiny_models import GLM4_CHAT_TINY, tiny_model_path

GREEDY = SamplingParams(max_tokens=16, temperature=0.0)


class RecordingSink:
    def __init__(self) -> None:
        self.text: dict[int, str] = {}
        self.finished: dict[int, dict[str, Any]] = {}
        self.failed: dict[int, Exception] = {}

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        self.text[index] = self.text.get(index, "") + text

    def finish(self, index: int, **usage: Any) -> None:
        self.finished[index] = usage

    def fail(self, index: int, error: Exception) -> None:
        self.failed[index] = error

    def is_cancelled(self, index: int) -> bool:
        return False


def chat(text: str, *, sampling: SamplingParams = GREEDY, **extra: Any) -> GenerationRequest:
    return GenerationRequest("req", [ChatMessage(role="user", content=text)], sampling, **extra)


def loaded(model: str | Path) -> TransformersBackend:
    backend = BACKENDS["transformers"](ReasonerSettings(model=str(model), device="cpu"))
    assert isinstance(backend, TransformersBackend)
    backend.load()
    return backend


@pytest.fixture(scope="module")
def tiny_glm() -> TransformersBackend:
    return loaded(tiny_model_path(GLM4_CHAT_TINY))


@pytest.fixture(scope="module")
def smollm2() -> TransformersBackend:
    started = time.perf_counter()
    backend = loaded("embedded:smollm2")
    backend.load_seconds = time.perf_counter() - started  # type: ignore[attr-defined]
    return backend


# -- start-up checks ------------------------------------------------------------------------


def test_a_missing_checkpoint_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="no such directory"):
        loaded(tmp_path / "glm-4-9b-chat-hf")


def test_a_checkpoint_without_tokenizer_is_refused(tmp_path: Path) -> None:
    shutil.copy(tiny_model_path(GLM4_CHAT_TINY) / "config.json", tmp_path / "config.json")
    with pytest.raises(TokenizerMissingError, match="tokenizer"):
        loaded(tmp_path)


def test_a_tokenizer_without_chat_template_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "base-model"
    shutil.copytree(tiny_model_path(GLM4_CHAT_TINY), target)
    (target / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ChatTemplateMissingError, match="chat template"):
        loaded(target)


def test_not_enough_memory_says_what_was_needed_and_free(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelserver import torch_runtime

    monkeypatch.setattr(torch_runtime, "free_memory", lambda device: 50_000)
    with pytest.raises(
        ModelLoadError, match=r"not enough memory.* parameters × 4 bytes = .* needed on cpu; free: 48\.8 KiB"
    ):
        loaded(tiny_model_path(GLM4_CHAT_TINY))


def test_a_device_this_machine_lacks_is_named() -> None:
    backend = TransformersBackend(
        ReasonerSettings(model=str(tiny_model_path(GLM4_CHAT_TINY)), device="cuda:3")
    )
    with pytest.raises(ModelLoadError, match="REASONER_DEVICE='cuda:3'"):
        backend.load()


# -- requests -------------------------------------------------------------------------------


def test_image_parts_are_refused_with_a_pointer_to_the_vision_stage(tiny_glm: TransformersBackend) -> None:
    request = GenerationRequest(
        "req",
        [
            ChatMessage(role="system", content="Be brief."),
            ChatMessage.model_validate(
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                }
            ),
        ],
    )
    with pytest.raises(UnsupportedParameterError, match="text only") as caught:
        tiny_glm.check_request(request)
    assert caught.value.param == "messages[1].content"


INVOICE_SCHEMA = {
    "type": "object",
    "properties": {"invoice_no": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["invoice_no", "amount"],
}


@pytest.mark.parametrize("max_tokens", [24, 48, 96])
def test_json_object_parses_even_from_random_weights(tiny_glm: TransformersBackend, max_tokens: int) -> None:
    # A random-weight model writes JSON only because the grammar masks its logits; the
    # closing reserve makes it parse even when max_tokens cuts it short.
    sampling = SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=7)
    batch = [
        chat("Give me JSON.", sampling=sampling, response_format={"type": "json_object"}),
        chat("The invoice total is", sampling=sampling),  # an unconstrained row in the same batch
    ]
    sink = RecordingSink()
    tiny_glm.generate(batch, sink)
    assert isinstance(json.loads(sink.text[0]), dict), sink.text[0]
    assert sink.finished[0]["completion_tokens"] <= max_tokens
    alone = RecordingSink()
    tiny_glm.generate([batch[1]], alone)
    assert alone.text[0] == sink.text[1]  # the constraint touches its own row only


def test_json_schema_is_enforced_on_smollm2(smollm2: TransformersBackend) -> None:
    import jsonschema

    request = chat(
        "Invoice INV-2024-0042, total due 1,280.50 USD. Extract the invoice number and the amount.",
        sampling=SamplingParams(max_tokens=64, temperature=0.0),
        response_format={"type": "json_schema", "json_schema": {"name": "invoice", "schema": INVOICE_SCHEMA}},
    )
    smollm2.check_request(request)
    sink = RecordingSink()
    smollm2.generate([request], sink)
    answer = json.loads(sink.text[0])
    jsonschema.validate(answer, INVOICE_SCHEMA)
    assert sink.finished[0]["finish_reason"] == "stop"


def test_a_schema_that_cannot_be_enforced_is_a_400_naming_the_problem(tiny_glm: TransformersBackend) -> None:
    schema = {"type": "object", "minProperties": "a"}
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    problem = r"cannot be enforced.*: minProperties must be an integer$"
    with pytest.raises(InvalidRequestError, match=problem) as caught:
        tiny_glm.check_request(chat("hi", response_format=bad))
    assert caught.value.param == "response_format.json_schema.schema"
    with pytest.raises(InvalidRequestError, match="must be a JSON Schema object"):
        tiny_glm.check_request(chat("hi", response_format={"type": "json_schema", "json_schema": {}}))
    tiny_glm.check_request(chat("hi", response_format={"type": "text"}))


def test_a_batch_decodes_with_the_chat_template_and_exact_usage(tiny_glm: TransformersBackend) -> None:
    from reasoner.backends.prompting import encode_prompt

    batch = [
        chat("The invoice total is"),
        chat("为什么这个报表的数字不一致？"),
        GenerationRequest(
            "r3",
            [
                ChatMessage(role="developer", content="Answer in English."),
                ChatMessage(role="user", content="A cat"),
            ],
            GREEDY,
        ),
    ]
    sink = RecordingSink()
    tiny_glm.generate(batch, sink)
    assert not sink.failed and set(sink.finished) == {0, 1, 2}
    for index, request in enumerate(batch):
        prompt = encode_prompt(tiny_glm.tokenizer, request.messages)
        assert tiny_glm.tokenizer.decode(prompt).startswith("[gMASK]<sop>")  # GLM's own template
        assert sink.finished[index]["prompt_tokens"] == len(prompt)
        assert 1 <= sink.finished[index]["completion_tokens"] <= GREEDY.max_tokens
    alone = RecordingSink()
    tiny_glm.generate([batch[1]], alone)
    assert alone.text.get(0, "") == sink.text.get(1, "")  # batching does not change an answer


def test_the_app_serves_generate_and_chat_over_http(tmp_path: Path) -> None:
    settings = ReasonerSettings(model=str(tiny_model_path(GLM4_CHAT_TINY)), device="cpu", port=1)
    with (
        ThreadedServer(create_app(settings), startup_timeout=60) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [GLM4_CHAT_TINY]
        answer = client.post(
            "/generate", json={"prompt": "The invoice total is", "max_tokens": 5, "temperature": 0}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == GLM4_CHAT_TINY
        assert body["usage"]["completion_tokens"] <= 5 and body["usage"]["prompt_tokens"] > 3
        assert (
            body["usage"]["total_tokens"]
            == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
        )
        chat_body = client.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "The invoice total is"}],
                "max_tokens": 5,
                "temperature": 0,
            },
        ).json()
        assert chat_body["choices"][0]["message"]["content"] == body["answer"]  # one engine, one answer
        refused = client.post("/generate", json={"prompt": ""})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "prompt"
        image = client.post(
            "/v1/chat/completions",
            json={
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                        ],
                    }
                ]
            },
        )
        assert image.status_code == 400 and image.json()["error"]["code"] == "unsupported_parameter"


# -- the real embedded model ------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_loads_from_the_cache_and_answers_sensibly(smollm2: TransformersBackend) -> None:
    assert smollm2.model_id == "smollm2-135m-instruct"
    assert smollm2.load_seconds < 15  # type: ignore[attr-defined]  # ~2 s from the cache vs ~20 s from GGUF
    sink = RecordingSink()
    smollm2.generate(
        [
            chat("What is the capital of France?", sampling=SamplingParams(max_tokens=24, temperature=0)),
            chat("Name a color.", sampling=SamplingParams(max_tokens=24, temperature=0)),
        ],
        sink,
    )
    assert "Paris" in sink.text[0]
    assert sink.finished[0]["finish_reason"] == "stop"
    assert sink.text[1].strip()


async def test_a_request_joins_the_running_batch_through_the_engine(tiny_glm: TransformersBackend) -> None:
    """Continuous batching end to end: engine queue → sink.admit → decode loop merge."""
    from modelserver.engine import Engine, TextDelta, collect

    long = chat("A cat", sampling=SamplingParams(max_tokens=300, temperature=0.0))  # 300 tokens, no EOS
    short = chat("The invoice total is", sampling=SamplingParams(max_tokens=16, temperature=0.0))
    hook = tiny_glm.model.register_forward_hook(lambda *_: time.sleep(0.002))  # ~2 ms a step
    engine = Engine(tiny_glm, max_batch_size=4, max_wait_s=0.0)
    engine.start()
    try:
        first = engine.submit(long)
        first_delta = await anext(aiter(first))
        assert isinstance(first_delta, TextDelta)  # the batch is decoding now
        joined = await collect(engine.submit(short))
        rest = await collect(first)
    finally:
        engine.stop()
        hook.remove()
    assert engine.batches_run == 1 and engine.rows_joined == 1  # it joined, no second batch
    alone = {0: RecordingSink(), 1: RecordingSink()}
    tiny_glm.generate([long], alone[0])
    tiny_glm.generate([short], alone[1])
    assert first_delta.text + rest.text == alone[0].text[0]  # joining does not change answers
    assert joined.text == alone[1].text[0]
    assert joined.completion_tokens == 16 and rest.finish_reason == "length"


def test_the_row_to_position_map_holds_live_rows_only() -> None:
    # Under continuous batching the batch may never end: a finished row's entry must go.
    from reasoner.backends.transformers_backend import _SubsetSink

    sink = RecordingSink()
    subset = _SubsetSink(sink)
    for position in (0, 2, 3):  # position 1 failed before decoding
        subset.add(position)
    subset.emit(1, "hi")
    subset.finish(1, finish_reason="stop")
    subset.fail(0, RuntimeError("bad"))
    assert subset.held == 1
    subset.emit(2, "there")
    assert sink.text == {2: "hi", 3: "there"} and set(sink.finished) == {2} and set(sink.failed) == {0}
