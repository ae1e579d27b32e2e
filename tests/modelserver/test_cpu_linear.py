"""The CPU's float32 linear layout (modelserver.cpu_linear): same answers, weights laid out for batches."""

from __future__ import annotations

import pytest
import torch
from modelserver.cpu_linear import (
    PackedLinear,
    applies,
    packed_gemm_available,
    prepare_cpu_linears,
    to_column_major,
)
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

needs_mkl = pytest.mark.skipif(not packed_gemm_available(), reason="this torch build has no MKL packed GEMM")


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


def test_a_column_major_linear_keeps_its_values_and_parameter() -> None:
    linear = nn.Linear(48, 96)
    before = linear.weight.detach().clone()
    x = torch.randn(8, 48)
    expected = linear(x)
    to_column_major(linear)
    assert isinstance(linear.weight, nn.Parameter)
    assert torch.equal(linear.weight, before)
    assert linear.weight.t().is_contiguous() and not linear.weight.is_contiguous()
    assert "weight" in linear.state_dict()
    torch.testing.assert_close(linear(x), expected, rtol=1e-5, atol=1e-5)


@needs_mkl
@pytest.mark.parametrize("bias", [False, True])
def test_a_packed_linear_matches_a_plain_one_at_every_batch_size(bias: bool) -> None:
    torch.manual_seed(1)
    linear = nn.Linear(64, 1000, bias=bias)
    head = PackedLinear(linear, rows=8)
    x = torch.randn(12, 64)
    with torch.inference_mode():
        for rows in range(1, 13):  # fewer rows are padded; more fall back to the plain weight
            torch.testing.assert_close(head(x[:rows]), linear(x[:rows]), rtol=1e-5, atol=1e-5)
        assert head(torch.randn(3, 1, 64)).shape == (3, 1, 1000)  # the model's (rows, 1, hidden)


@needs_mkl
def test_a_row_of_a_packed_linear_does_not_depend_on_what_else_is_batched() -> None:
    torch.manual_seed(2)
    head = PackedLinear(nn.Linear(64, 500, bias=False), rows=8)
    x = torch.randn(8, 64)
    with torch.inference_mode():
        batched = head(x)
        for rows in range(2, 9):  # one row takes the GEMV path
            assert torch.equal(head(x[:rows]), batched[:rows])  # bit for bit: padding never mixes in


@needs_mkl
def test_prepare_lays_out_every_linear_and_packs_the_tied_head() -> None:
    model = tiny_llama(tied=True)
    embeddings = model.get_input_embeddings().weight
    report = prepare_cpu_linears(model, rows=4)
    assert report.linears == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the head
    assert report.packed_rows == 4 and report.extra_bytes > 0
    head = model.get_output_embeddings()
    assert isinstance(head, PackedLinear)
    assert head.weight is embeddings and embeddings.is_contiguous()  # still tied, still row-major
    projection = model.model.layers[1].mlp.down_proj
    assert isinstance(projection, PackedLinear) and projection.weight.t().is_contiguous()
    assert "4 rows" in report.describe()


@needs_mkl
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
