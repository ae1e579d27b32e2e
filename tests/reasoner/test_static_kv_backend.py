"""The reasoner backend with its static KV cache (``REASONER_STATIC_KV=on``, eager on the CPU).

On CUDA this cache is what the CUDA graphs replay; here it must answer exactly as the
dynamic-cache backend does: plain and grammar-constrained rows, seeded sampling, a request
joining a running batch through the engine.
"""

from __future__ import annotations

import json
import time

import pytest
from modelserver.backend import SamplingParams
from reasoner.backends import BACKENDS
from reasoner.backends.transformers_backend import TransformersBackend
from reasoner.config import ReasonerSettings

from tests.reasoner import test_transformers_backend as dynamic_tests
from tests.reasoner.test_transformers_backend import GREEDY, RecordingSink, chat
from tests.support.tiny_models import GLM4_CHAT_TINY, tiny_model_path

tiny_glm = dynamic_tests.tiny_glm  # the dynamic-cache backend on the same checkpoint (a fixture)


@pytest.fixture(scope="module")
def tiny_glm_static() -> TransformersBackend:
    settings = ReasonerSettings(
        model=str(tiny_model_path(GLM4_CHAT_TINY)), device="cpu", static_kv="on", kv_cache_max_len=256
    )
    backend = BACKENDS["transformers"](settings)
    assert isinstance(backend, TransformersBackend)
    backend.load()
    backend.warmup()
    assert backend.static_kv is not None and backend.static_kv.max_len == 256
    assert backend.static_kv.runner is None  # no graphs on the CPU
    return backend


def test_static_and_dynamic_backends_answer_alike(
    tiny_glm: TransformersBackend, tiny_glm_static: TransformersBackend
) -> None:
    sampled = SamplingParams(max_tokens=40, temperature=1.0, seed=7)
    batch = [
        chat("Give me JSON.", sampling=sampled, response_format={"type": "json_object"}),
        chat("The invoice total is", sampling=GREEDY),
        chat("A cat", sampling=sampled),
    ]
    dynamic, static = RecordingSink(), RecordingSink()
    tiny_glm.generate(batch, dynamic)
    tiny_glm_static.generate(batch, static)
    assert static.text == dynamic.text
    for index, usage in dynamic.finished.items():  # the same usage; confidence up to float noise
        assert {**static.finished[index], "confidence": None} == {**usage, "confidence": None}
        assert static.finished[index]["confidence"] == pytest.approx(usage["confidence"], rel=1e-5)
    assert isinstance(json.loads(static.text[0]), dict)
    assert tiny_glm_static.static_kv.eager_steps > 0


def test_a_row_longer_than_the_static_row_stops_at_length(tiny_glm_static: TransformersBackend) -> None:
    sink = RecordingSink()
    tiny_glm_static.generate([chat("A cat", sampling=SamplingParams(max_tokens=2000, temperature=0.0))], sink)
    usage = sink.finished[0]
    assert usage["finish_reason"] == "length"
    assert usage["prompt_tokens"] + usage["completion_tokens"] == 256  # the whole row, not more


async def test_a_request_joins_the_running_static_batch_through_the_engine(
    tiny_glm_static: TransformersBackend,
) -> None:
    from modelserver.engine import Engine, TextDelta, collect

    long = chat("A cat", sampling=SamplingParams(max_tokens=300, temperature=0.0))
    short = chat("The invoice total is", sampling=SamplingParams(max_tokens=16, temperature=0.0))
    hook = tiny_glm_static.model.register_forward_hook(lambda *_: time.sleep(0.002))
    engine = Engine(tiny_glm_static, max_batch_size=4, max_wait_s=0.0)
    engine.start()
    try:
        first = engine.submit(long)
        first_delta = await anext(aiter(first))
        assert isinstance(first_delta, TextDelta)
        joined = await collect(engine.submit(short))
        rest = await collect(first)
    finally:
        engine.stop()
        hook.remove()
    assert engine.batches_run == 1 and engine.rows_joined == 1
    alone = {0: RecordingSink(), 1: RecordingSink()}
    tiny_glm_static.generate([long], alone[0])
    tiny_glm_static.generate([short], alone[1])
    assert first_delta.text + rest.text == alone[0].text[0]
    assert joined.text == alone[1].text[0]
