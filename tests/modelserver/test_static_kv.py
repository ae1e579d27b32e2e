"""The static KV cache (the GPU fast path's layout) run eagerly on the CPU: same tokens as today's path.

CUDA graphs replay exactly the step tested here (:meth:`StaticKV.eager_step`); what the
CPU can prove is the layout: shared write column, right-aligned joiners, per-row masks
and positions, slot moves when rows leave, and compaction when the column reaches the end.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from modelserver.backend import SamplingParams  # noqa: E402
from modelserver.decoding import JoiningRow  # noqa: E402
from modelserver.errors import InvalidRequestError  # noqa: E402
from modelserver.static_kv import (  # noqa: E402
    KVShape,
    StaticKV,
    batch_buckets,
    length_buckets,
    plan_max_len,
)

from tests.modelserver import test_decoding as dynamic_tests  # noqa: E402
from tests.modelserver.test_decoding import GREEDY, reference_greedy, run  # noqa: E402
from tests.support.tiny_models import GLM4_CHAT_TINY, tiny_model_path  # noqa: E402

# The dynamic-path tests' fixtures (a tiny random Llama, its tokenizer, three prompts), by name.
model, tokenizer, prompts = dynamic_tests.model, dynamic_tests.tokenizer, dynamic_tests.prompts


def static(model: Any, *, slots: int = 4, max_len: int = 64, shortest_window: int = 16) -> StaticKV:
    return StaticKV(
        model,
        slots=slots,
        max_len=max_len,
        device="cpu",
        dtype=torch.float32,
        shortest_window=shortest_window,
    )


def tokens(results: list[Any]) -> list[list[int]]:
    return [r.token_ids for r in results]


def test_buckets_and_budget_planning() -> None:
    assert batch_buckets(32) == [1, 2, 4, 8, 16, 32] and batch_buckets(6) == [1, 2, 4, 6]
    assert length_buckets(4096) == [256, 512, 1024, 2048, 4096] and length_buckets(300) == [256, 300]
    shape = KVShape(layers=40, kv_heads=2, head_dim=128)  # GLM-4-9B
    assert shape.bytes_per_token(torch.bfloat16) == 40 * 1024
    gib = 1 << 30
    assert (
        plan_max_len(shape, torch.bfloat16, slots=32, wanted_len=8192, budget_bytes=4 * gib, context=None)
        == 3264
    )
    assert (
        plan_max_len(shape, torch.bfloat16, slots=4, wanted_len=8192, budget_bytes=4 * gib, context=2048)
        == 2048
    )


def test_static_greedy_equals_the_dynamic_path(model, tokenizer, prompts) -> None:
    kv = static(model)
    batched, _ = run(model, tokenizer, prompts, [GREEDY] * 3, static_kv=kv)
    assert tokens(batched) == tokens(run(model, tokenizer, prompts, [GREEDY] * 3)[0])
    for index, prompt in enumerate(prompts):
        assert batched[index].token_ids == reference_greedy(model, prompt, GREEDY.max_tokens)
    assert kv.eager_steps > 0 and kv.graph_steps == 0  # CPU: no graphs, the same step eagerly


def assert_joiners_decode_as_alone(
    model: Any, tokenizer: Any, prompts: list[list[int]], kv: StaticKV
) -> tuple[list[Any], Any]:
    """Four rows (greedy, greedy, seeded, 3 tokens) join one running batch at steps 2 and 4 of ``kv``:
    each must get the tokens it gets alone on the dynamic path. Returns the results and the sink."""
    seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=3)
    short = SamplingParams(max_tokens=3, temperature=0.0)
    params = [GREEDY, GREEDY, seeded, short]
    arrivals = {
        2: [JoiningRow(prompts[1], params[1])],
        4: [JoiningRow(prompts[2], params[2]), JoiningRow(prompts[3], params[3])],
    }
    calls: list[int] = []

    def join(running: int) -> list[JoiningRow]:
        calls.append(running)
        return arrivals.get(len(calls), [])

    results, sink = run(model, tokenizer, [prompts[0]], [params[0]], join=join, static_kv=kv)
    assert tokens(results) == [
        run(model, tokenizer, [prompt], [param])[0][0].token_ids
        for prompt, param in zip(prompts, params, strict=True)
    ]
    assert set(sink.finished) == {0, 1, 2, 3}
    return results, sink


def test_rows_joining_and_leaving_mid_batch_decode_as_they_would_alone(model, tokenizer, prompts) -> None:
    results, sink = assert_joiners_decode_as_alone(model, tokenizer, [*prompts, prompts[0]], static(model))
    assert sink.text(2) == tokenizer.decode(results[2].token_ids)


def test_a_batch_that_never_empties_compacts_its_window_and_keeps_every_row_exact(
    model, tokenizer, prompts
) -> None:
    # Rows join every other step and live 6 steps; the cache is a few columns longer than the
    # longest row, so the
    # shared write column reaches the end again and again: the live window is shifted left
    # (compaction) while rows keep decoding, and each row still gets its tokens alone.
    live = SamplingParams(max_tokens=6, temperature=0.0)
    calls: list[int] = []

    def join(running: int) -> list[JoiningRow]:
        calls.append(running)
        if len(calls) >= 60 or len(calls) % 2 == 0:
            return []
        return [JoiningRow(prompts[(len(calls) // 2) % 3], live)]

    longest = max(len(p) for p in prompts)
    kv = static(model, slots=4, max_len=longest + live.max_tokens + 2, shortest_window=8)
    results, sink = run(model, tokenizer, [prompts[0]], [live], join=join, static_kv=kv)
    assert min(calls[:58]) >= 1  # the batch never emptied
    assert len(results) == 31 and all(s["finish_reason"] == "length" for s in sink.finished.values())
    alone = {i: run(model, tokenizer, [prompts[i]], [live])[0][0].token_ids for i in range(3)}
    assert tokens(results) == [alone[0]] + [alone[k % 3] for k in range(30)]
    assert kv.eager_steps >= 60 and kv.compactions >= 5  # 60+ steps through a short cache


def test_the_static_length_caps_prompt_plus_answer(model, tokenizer, prompts) -> None:
    kv = static(model, max_len=len(prompts[2]) + 5)
    results, sink = run(model, tokenizer, [prompts[2], prompts[1]], [GREEDY] * 2, static_kv=kv)
    assert results[0].completion_tokens == 5 and sink.finished[0]["finish_reason"] == "length"
    assert results[0].token_ids == reference_greedy(model, prompts[2], 5)
    assert results[1].completion_tokens == GREEDY.max_tokens
    full = static(model, max_len=len(prompts[2]))
    _, sink = run(model, tokenizer, [prompts[2]], [GREEDY], static_kv=full)
    assert isinstance(sink.failed[0], InvalidRequestError)


def test_glm4_static_greedy_equals_the_dynamic_path(tokenizer) -> None:
    glm = transformers.AutoModelForCausalLM.from_pretrained(
        tiny_model_path(GLM4_CHAT_TINY), dtype=torch.float32
    ).eval()
    texts = ["Why is the total wrong?", "订单号", "a b c d e f g"]
    encoded = [
        list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": t}], add_generation_prompt=True, return_dict=True
            )["input_ids"]
        )
        for t in texts
    ]
    arrivals = {2: [JoiningRow(encoded[1], GREEDY)], 4: [JoiningRow(encoded[2], GREEDY)]}
    calls: list[int] = []

    def join(running: int) -> list[JoiningRow]:
        calls.append(running)
        return arrivals.get(len(calls), [])

    kv = StaticKV(glm, slots=4, max_len=128, device="cpu", dtype=torch.float32, shortest_window=32)
    results, _ = run(glm, tokenizer, [encoded[0]], [GREEDY], join=join, static_kv=kv)
    assert tokens(results) == [run(glm, tokenizer, [e], [GREEDY])[0][0].token_ids for e in encoded]


def test_start_up_uses_the_static_cache_where_the_settings_and_budget_say(model) -> None:
    from types import SimpleNamespace

    from modelserver.cuda_graphs import prepare_static_kv

    def settings(**overrides: Any) -> SimpleNamespace:
        values = {
            "static_kv": "auto",
            "cuda_graphs": True,
            "kv_cache_gib": 1.0,
            "kv_cache_max_len": 8192,
            "max_batch_size": 4,
            "decode_step": "auto",
        }
        return SimpleNamespace(**{**values, **overrides})

    assert prepare_static_kv(model, settings(), context=256) is None  # auto: CUDA only
    kv = prepare_static_kv(model, settings(static_kv="on"), context=256)
    assert kv is not None and kv.runner is None  # the CPU never captures graphs
    assert kv.step_name == "fused"  # the written-out step, run eagerly (modelserver.fused_step)
    assert (kv.slots, kv.max_len) == (4, 256)  # capped by the model's context
    per_token = KVShape.of(model).bytes_per_token(torch.float32)
    small = prepare_static_kv(
        model, settings(static_kv="on", kv_cache_gib=4 * 100 * per_token / 2**30), context=256
    )
    assert small is not None and small.max_len == 64  # lowered to fit the budget (a multiple of 64)
    assert (
        prepare_static_kv(
            model, settings(static_kv="on", kv_cache_gib=4 * 10 * per_token / 2**30), context=256
        )
        is None
    )
