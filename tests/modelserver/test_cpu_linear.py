"""The CPU's float32 linears packed for oneDNN (modelserver.cpu_linear): same answers, same memory."""

from __future__ import annotations

import pytest
import torch
from modelserver.cpu_linear import (
    PackedLinear,
    applies,
    is_packed,
    packed_linear_available,
    prepare_cpu_linears,
)
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

pytestmark = pytest.mark.skipif(
    not packed_linear_available(), reason="this torch build has no oneDNN inner product"
)


def tiny_llama(*, tied: bool = True) -> LlamaForCausalLM:
    """SmolLM2's architecture at toy size (tied embeddings, grouped KV heads), random weights."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tied,
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_a_packed_linear_matches_a_plain_one_at_every_row_count_and_shape(bias: bool, seed: int) -> None:
    torch.manual_seed(seed)
    linear = nn.Linear(64, 1000, bias=bias)
    packed = PackedLinear(linear, rows=8)
    x = torch.randn(40, 64) * (1 + seed)
    with torch.inference_mode():
        for rows in (1, 2, 3, 7, 8, 9, 16, 40):  # decode batches and prefill-sized inputs alike
            torch.testing.assert_close(packed(x[:rows]), linear(x[:rows]), rtol=1e-5, atol=1e-5)
        assert packed(torch.randn(3, 1, 64)).shape == (3, 1, 1000)  # the model's (rows, 1, hidden)
        assert packed(torch.randn(2, 5, 64)).shape == (2, 5, 1000)  # a prefill's (rows, tokens, hidden)
        assert packed(torch.randn(0, 64)).shape == (0, 1000)
        wide = torch.randn(64, 6)  # a non-contiguous input (a transposed view)
        torch.testing.assert_close(packed(wide.t()), linear(wide.t()), rtol=1e-5, atol=1e-5)


def test_a_row_gets_the_same_bits_whatever_else_is_in_the_call() -> None:
    """Batching never changes a row: 1 decoding row, 8, or a prefill's hundreds."""
    torch.manual_seed(2)
    packed = PackedLinear(nn.Linear(64, 500, bias=False), rows=8)
    x = torch.randn(400, 64)
    with torch.inference_mode():
        everything = packed(x)
        for rows in (1, 2, 3, 5, 8, 9, 33, 128):
            assert torch.equal(packed(x[:rows]), everything[:rows])


def test_prepare_packs_every_linear_and_drops_the_plain_weights_but_the_heads() -> None:
    model = tiny_llama(tied=True)
    embeddings = model.get_input_embeddings().weight
    before = sum(p.numel() for p in model.parameters())
    head_weight = model.get_output_embeddings().weight
    projections = sum(
        m.weight.numel() for m in model.modules() if type(m) is nn.Linear and m.weight is not head_weight
    )
    report = prepare_cpu_linears(model, rows=4)
    assert report.linears == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the head
    assert report.packed_rows == 4
    assert report.extra_bytes == embeddings.nbytes  # only the head's packed copy is new
    head = model.get_output_embeddings()
    assert isinstance(head, PackedLinear) and head.weight is embeddings  # still tied
    projection = model.model.layers[1].mlp.down_proj
    assert isinstance(projection, PackedLinear) and not hasattr(projection, "weight")
    # the plain projection weights are gone (the packed ones replace them): no memory added
    assert sum(p.numel() for p in model.parameters()) == before - projections
    assert is_packed(model) and not is_packed(tiny_llama())
    assert "packed for oneDNN" in report.describe() and "4 rows" in report.describe()


@pytest.mark.parametrize("tied", [True, False])
def test_greedy_tokens_are_the_same_as_the_untouched_model(tied: bool) -> None:
    reference = tiny_llama(tied=tied)
    fast = tiny_llama(tied=tied)
    prepare_cpu_linears(fast, rows=4)
    prompts = torch.tensor([[5, 17, 42, 7, 99], [1, 2, 3, 4, 5], [250, 8, 8, 8, 31]])
    for rows in (1, 3):
        expected = reference.generate(prompts[:rows], max_new_tokens=12, do_sample=False)
        got = fast.generate(prompts[:rows], max_new_tokens=12, do_sample=False)
        assert torch.equal(got, expected)
        assert fast(prompts[:rows]).logits.shape == expected.new_zeros(rows, 5, 300).shape


def test_only_float32_models_on_the_cpu_qualify() -> None:
    model = tiny_llama()
    assert applies(model)
    assert not applies(model.to(torch.bfloat16))
    bf16 = tiny_llama().to(torch.bfloat16)
    assert prepare_cpu_linears(bf16, rows=4).linears == 0 and not is_packed(bf16)
