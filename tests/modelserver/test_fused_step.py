"""The written-out decode step (``modelserver.fused_step``) computes what transformers' step computes.

On the CPU it runs eagerly (``fused``), with transformers' arithmetic in transformers'
order, so its logits match to float32 rounding and whole decodes give the same tokens. On
CUDA the same functions are compiled and captured (``tests/modelserver/test_cuda_graphs.py``).
Checked on every family it covers: GLM-4 (the reasoner's production architecture, its
tiny checkpoint: interleaved partial rotary, QKV bias, sandwich norms, grouped KV heads),
GLM-4.6V's text model (vision ``glm``: M-RoPE tables; its whole decodes with images and
joiners are ``tests/vision/test_glm_joining.py``'s) and Llama (SmolLM2, the embedded
default: half rotary, separate gate and up projections).
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from modelserver import fused_step  # noqa: E402
from modelserver.fused_step import ARCHITECTURES, FusedStep, choose_step, disagreement  # noqa: E402

from tests.modelserver import test_decoding as dynamic_tests  # noqa: E402
from tests.modelserver.test_static_kv import assert_joiners_decode_as_alone, static  # noqa: E402
from tests.support.tiny_models import GLM4_CHAT_TINY, GLM46V_TINY, tiny_model_path  # noqa: E402

tokenizer, llama, prompts = dynamic_tests.tokenizer, dynamic_tests.model, dynamic_tests.prompts


@pytest.fixture(scope="module")
def glm() -> Any:
    path = tiny_model_path(GLM4_CHAT_TINY)
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def glm46v() -> Any:
    path = tiny_model_path(GLM46V_TINY)
    return transformers.AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()


def text_config(model: Any) -> Any:
    return getattr(model.config, "text_config", None) or model.config


@pytest.fixture(params=["glm", "glm46v", "llama"])
def family(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("seed", range(6))
def test_logits_match_transformers_step_for_any_rows_history_and_positions(family, seed) -> None:
    kv = static(family, max_len=128, shortest_window=32)
    step = FusedStep(kv, ARCHITECTURES[text_config(family).model_type], compiled=False)
    gen = torch.Generator().manual_seed(seed)
    rows = int(torch.randint(1, kv.slots + 1, (1,), generator=gen))
    width = kv.length_buckets[int(torch.randint(0, len(kv.length_buckets), (1,), generator=gen))]
    column = int(torch.randint(1, width, (1,), generator=gen))
    kv.keys.normal_(generator=gen)
    kv.values.normal_(generator=gen)
    kv.mask.fill_(kv.blocked)
    for row in range(rows):  # each row its own run of history ending at the shared column
        start = int(torch.randint(0, column + 1, (1,), generator=gen))
        kv.mask[row, :, :, start : column + 1] = 0.0
    kv.input_ids[:rows, 0] = torch.randint(0, text_config(family).vocab_size, (rows,), generator=gen)
    kv.positions[:rows, 0] = torch.randint(0, 200, (rows,), generator=gen)
    kv.column.fill_(column)
    with torch.inference_mode():
        expected = kv.transformers_step(rows, width)
        written = (kv.keys[:, :rows, :, column].clone(), kv.values[:, :rows, :, column].clone())
        kv.keys[:, :, :, column] = 0.0
        got = step(rows, width)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kv.keys[:, :rows, :, column], written[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kv.values[:, :rows, :, column], written[1], rtol=1e-5, atol=1e-5)


def test_whole_decodes_with_rows_joining_give_the_dynamic_paths_tokens(family, tokenizer) -> None:
    texts = ["Why is the total wrong?", "订单号", "a b c d e f g", "Say hello."]
    kv = static(family)
    kv.step_name, step = choose_step(kv, "fused")
    assert kv.step_name == "fused" and step is not None
    kv.compute = step
    encoded = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    assert_joiners_decode_as_alone(family, tokenizer, encoded, kv)
    assert kv.eager_steps > 0


def test_joined_projections_are_views_so_the_model_holds_no_second_copy(glm) -> None:
    attn = glm.model.layers[0].self_attn
    before = {name: getattr(attn, name).weight.detach().clone() for name in ("q_proj", "k_proj", "v_proj")}
    step = FusedStep(static(glm), ARCHITECTURES["glm4"], compiled=False)
    joined = step.layers[0].qkv
    for name, weight in before.items():
        current = getattr(attn, name).weight
        assert current.untyped_storage().data_ptr() == joined.untyped_storage().data_ptr()
        assert torch.equal(current, weight)


def test_auto_is_fused_on_the_cpu_and_transformers_is_left_alone(glm) -> None:
    name, step = choose_step(static(glm), "auto")
    assert name == "fused" and isinstance(step, FusedStep) and not step.compiled
    assert choose_step(static(glm), "transformers") == ("transformers", None)


def test_an_architecture_without_a_written_out_step_keeps_transformers(glm, monkeypatch) -> None:
    monkeypatch.setattr(glm.config, "model_type", "qwen2_moe")
    assert choose_step(static(glm), "auto") == ("transformers", None)


def test_a_step_that_disagrees_with_transformers_is_refused(glm, monkeypatch, caplog) -> None:
    # A plausible bug: the rotary rotation of the other family (wrong positions in every head).
    wrong = fused_step.Architecture(
        fused_step.interleave_tables, fused_step.rotate_halves, True, fused_step._fused_gate_up
    )
    monkeypatch.setitem(ARCHITECTURES, "glm4", wrong)
    kv = static(glm)
    assert disagreement(kv, FusedStep(kv, wrong, compiled=False)) > 1e-2
    assert choose_step(kv, "fused") == ("transformers", None)
    assert "disagrees with transformers'" in caplog.text


def test_a_step_that_cannot_be_built_falls_back(glm, monkeypatch, caplog) -> None:
    monkeypatch.setattr(glm.config, "hidden_act", "gelu")
    assert choose_step(static(glm), "fused") == ("transformers", None)
    assert "could not be built" in caplog.text
