"""The reasoner with its CPU linear layout (``REASONER_CPU_LINEAR``, on by default) answers as without it.

The real embedded SmolLM2 (float32 on the CPU), greedy, the prompts of the CPU benches:
a batch of 8 (the row count the packing is tuned for) and single rows must give the same
text, token for token, as the model as loaded.
"""

from __future__ import annotations

import pytest
from modelserver.backend import SamplingParams
from modelserver.cpu_linear import PackedLinear, packed_linear_available
from reasoner.backends import BACKENDS
from reasoner.backends.transformers_backend import TransformersBackend
from reasoner.config import ReasonerSettings
from torch import nn

from bench.reasoner_batching import PROMPTS  # the bench's open questions: answers run to max_tokens
from tests.reasoner.test_transformers_backend import RecordingSink, chat

pytestmark = pytest.mark.skipif(
    not packed_linear_available(), reason="this torch build has no oneDNN inner product"
)

GREEDY_32 = SamplingParams(max_tokens=32, temperature=0.0)


def smollm2(*, cpu_linear: bool) -> TransformersBackend:
    settings = ReasonerSettings(
        model="embedded:smollm2", device="cpu", max_batch_size=8, cpu_linear=cpu_linear
    )
    backend = BACKENDS["transformers"](settings)
    assert isinstance(backend, TransformersBackend)
    backend.load()
    return backend


@pytest.fixture(scope="module")
def plain() -> TransformersBackend:
    return smollm2(cpu_linear=False)


@pytest.fixture(scope="module")
def fast() -> TransformersBackend:
    return smollm2(cpu_linear=True)


def answers(backend: TransformersBackend, prompts: list[str]) -> dict[int, str]:
    sink = RecordingSink()
    backend.generate([chat(p, sampling=GREEDY_32) for p in prompts], sink)
    assert not sink.failed
    return sink.text


def test_the_layout_is_on_by_default_and_off_when_asked(
    plain: TransformersBackend, fast: TransformersBackend
) -> None:
    assert ReasonerSettings().cpu_linear is True
    head = fast.model.get_output_embeddings()
    assert isinstance(head, PackedLinear) and head.rows == 8
    assert not isinstance(plain.model.get_output_embeddings(), PackedLinear)
    assert type(plain.model.model.layers[0].mlp.up_proj) is nn.Linear
    up = fast.model.model.layers[0].mlp.up_proj
    assert isinstance(up, PackedLinear) and not hasattr(up, "weight")  # packed in place of the plain weight


def test_a_batch_of_8_answers_token_for_token_as_before(
    plain: TransformersBackend, fast: TransformersBackend
) -> None:
    expected = answers(plain, PROMPTS)
    assert answers(fast, PROMPTS) == expected
    assert all(len(text) > 60 for text in expected.values())  # real answers, not early EOS


def test_single_rows_answer_token_for_token_as_before(
    plain: TransformersBackend, fast: TransformersBackend
) -> None:
    assert answers(fast, PROMPTS[:1]) == answers(plain, PROMPTS[:1])
