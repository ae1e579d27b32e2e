"""The shared batched decode loop on a tiny random-weight Llama (SmolLM2's architecture)."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from modelserver.backend import SamplingParams  # noqa: E402
from modelserver.decoding import IncrementalDetokenizer, JoiningRow, decode_batch  # noqa: E402
from modelserver.errors import InvalidRequestError  # noqa: E402
from modelserver.structured import completeness  # noqa: E402

from tests.support.tiny_models import GLM4_CHAT_TINY, tiny_model_path  # noqa: E402

GREEDY = SamplingParams(max_tokens=12, temperature=0.0)
NO_EOS: set[int] = set()


class RecordingSink:
    """A BatchSink that records everything; ``cancel_after[i] = n`` cancels row i after n emits."""

    def __init__(self, cancel_after: dict[int, int] | None = None, cancelled: set[int] | None = None) -> None:
        self.texts: dict[int, list[str]] = {}
        self.finished: dict[int, dict[str, Any]] = {}
        self.failed: dict[int, Exception] = {}
        self.cancel_after = cancel_after or {}
        self.cancelled = set(cancelled or ())

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        assert index not in self.finished, "a finished row must not emit"
        self.texts.setdefault(index, []).append(text)
        if len(self.texts[index]) >= self.cancel_after.get(index, 1 << 30):
            self.cancelled.add(index)

    def finish(self, index: int, **usage: Any) -> None:
        assert index not in self.finished, "finish must be called once per row"
        self.finished[index] = usage

    def fail(self, index: int, error: Exception) -> None:
        self.failed[index] = error

    def is_cancelled(self, index: int) -> bool:
        return index in self.cancelled

    def text(self, index: int) -> str:
        return "".join(self.texts.get(index, []))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    # Byte-level BPE with a 400-entry vocabulary: CJK characters span several tokens.
    return transformers.AutoTokenizer.from_pretrained(tiny_model_path(GLM4_CHAT_TINY))


@pytest.fixture(scope="module")
def model(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 2-layer Llama with random weights, saved and reloaded like a real checkpoint."""
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        initializer_range=0.2,  # varied logits, so wrong positions or masks change the output
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    path: Path = tmp_path_factory.mktemp("tiny-llama")
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def prompts(tokenizer: Any) -> list[list[int]]:
    texts = ["The invoice total is", "A cat", "为什么这个报表的数字不一致？应该怎么做？"]
    encoded = [tokenizer.encode(text, add_special_tokens=False) for text in texts]
    assert len({len(ids) for ids in encoded}) == 3  # different lengths: real left padding
    return encoded


def reference_greedy(model: Any, prompt: list[int], steps: int) -> list[int]:
    """Greedy tokens by full recomputation: no cache, no padding, nothing clever."""
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            ids.append(int(logits.argmax()))
    return ids[len(prompt) :]


def run(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    params: list[SamplingParams],
    sink: RecordingSink | None = None,
    **kwargs: Any,
) -> tuple[list[Any], RecordingSink]:
    """Decode, gathering each row's result from ``on_result`` into a list in request order."""
    sink = sink or RecordingSink()
    kwargs.setdefault("eos_ids", NO_EOS)
    results: dict[int, Any] = {}

    def keep(index: int, result: Any) -> None:
        assert index not in results, "one result per row"
        results[index] = result

    decode_batch(model, tokenizer, prompts, params, sink, on_result=keep, **kwargs)
    assert sorted(results) == list(range(len(results)))
    return [results[i] for i in range(len(results))], sink


def test_batched_greedy_equals_each_prompt_alone_and_full_recomputation(model, tokenizer, prompts) -> None:
    batched, _ = run(model, tokenizer, prompts, [GREEDY] * 3)
    for index, prompt in enumerate(prompts):
        alone, _ = run(model, tokenizer, [prompt], [GREEDY])
        assert batched[index].token_ids == alone[0].token_ids
        assert batched[index].token_ids == reference_greedy(model, prompt, GREEDY.max_tokens)


def test_max_tokens_is_exact_per_row(model, tokenizer, prompts) -> None:
    limits = [1, 5, 9]
    results, sink = run(
        model, tokenizer, prompts, [SamplingParams(max_tokens=n, temperature=0) for n in limits]
    )
    for index, limit in enumerate(limits):
        assert results[index].completion_tokens == limit
        assert sink.finished[index]["finish_reason"] == "length"
        assert sink.finished[index]["completion_tokens"] == limit


def test_usage_counts_prompt_without_padding_and_streamed_text_matches_tokens(
    model, tokenizer, prompts
) -> None:
    results, sink = run(model, tokenizer, prompts, [GREEDY] * 3)
    for index, prompt in enumerate(prompts):
        assert sink.finished[index]["prompt_tokens"] == len(prompt)
        assert sink.finished[index]["completion_tokens"] == len(results[index].token_ids) == GREEDY.max_tokens
        full = tokenizer.decode(results[index].token_ids, skip_special_tokens=True)
        assert sink.text(index) == full.rstrip("\ufffd")
        assert "\ufffd" not in sink.text(index) or "\ufffd" in full.rstrip("\ufffd")
        assert 0.0 < sink.finished[index]["confidence"] <= 1.0


def test_eos_stops_its_row_while_the_others_continue(model, tokenizer, prompts) -> None:
    free, _ = run(model, tokenizer, prompts, [GREEDY] * 3)
    eos = free[0].token_ids[3]  # row 0 emits this at step 4: make it the end token
    results, sink = run(model, tokenizer, prompts, [GREEDY] * 3, eos_ids={eos})
    first = free[0].token_ids.index(eos)
    assert results[0].token_ids == free[0].token_ids[: first + 1]  # EOS counted, as vLLM does
    assert sink.finished[0] == {**sink.finished[0], "finish_reason": "stop", "completion_tokens": first + 1}
    for index in (1, 2):
        expected = free[index].token_ids
        if eos in expected:
            expected = expected[: expected.index(eos) + 1]
        assert results[index].token_ids == expected  # dropping row 0 from the cache changed nothing


def test_cancellation_stops_a_row_and_leaves_the_others(model, tokenizer, prompts) -> None:
    params = [SamplingParams(max_tokens=20, temperature=0.0)] * 3
    free, _ = run(model, tokenizer, prompts, params)
    results, sink = run(model, tokenizer, prompts, params, RecordingSink(cancel_after={0: 2}, cancelled={1}))
    assert sink.finished[1] == {**sink.finished[1], "finish_reason": "stop", "completion_tokens": 0}
    assert 0 < results[0].completion_tokens < 20
    assert len(sink.texts[0]) == 2  # nothing after the cancel
    assert results[0].token_ids == free[0].token_ids[: results[0].completion_tokens]
    assert results[2].token_ids == free[2].token_ids


def test_a_seed_reproduces_whatever_else_is_batched(model, tokenizer, prompts) -> None:
    seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=7)
    alone, _ = run(model, tokenizer, [prompts[0]], [seeded])
    batched, _ = run(
        model, tokenizer, prompts, [seeded, SamplingParams(max_tokens=12, temperature=1.0, seed=1), GREEDY]
    )
    other_seed, _ = run(
        model, tokenizer, [prompts[0]], [SamplingParams(max_tokens=12, temperature=1.0, seed=8)]
    )
    assert batched[0].token_ids == alone[0].token_ids
    assert other_seed[0].token_ids != alone[0].token_ids
    greedy, _ = run(model, tokenizer, [prompts[0]], [GREEDY])
    assert alone[0].token_ids != greedy[0].token_ids  # it really sampled


def test_a_tiny_top_p_keeps_only_the_most_likely_token(model, tokenizer, prompts) -> None:
    nucleus, _ = run(
        model, tokenizer, prompts, [SamplingParams(max_tokens=8, temperature=1.5, top_p=1e-6, seed=3)] * 3
    )
    greedy, _ = run(model, tokenizer, prompts, [SamplingParams(max_tokens=8, temperature=0.0)] * 3)
    assert [r.token_ids for r in nucleus] == [r.token_ids for r in greedy]


def test_the_context_length_caps_generation_and_refuses_a_prompt_that_fills_it(
    model, tokenizer, prompts
) -> None:
    long, short = prompts[2], prompts[1]
    results, sink = run(model, tokenizer, [long, short], [GREEDY, GREEDY], max_context=len(short) + 3)
    assert isinstance(sink.failed[0], InvalidRequestError) and 0 not in sink.finished
    assert results[1].completion_tokens == 3 and sink.finished[1]["finish_reason"] == "length"


def test_the_model_eos_ends_a_row_by_default(model, tokenizer, prompts) -> None:
    free, _ = run(model, tokenizer, [prompts[0]], [GREEDY])
    model.generation_config.eos_token_id = free[0].token_ids[1]
    try:
        results, sink = run(model, tokenizer, [prompts[0]], [GREEDY], eos_ids=None)
    finally:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    assert sink.finished[0]["finish_reason"] == "stop"
    assert results[0].token_ids == free[0].token_ids[: free[0].token_ids.index(free[0].token_ids[1]) + 1]


def test_incremental_detokenisation_never_splits_a_character(tokenizer) -> None:
    text = "发票金额合计 1280.50 元 — ok ✓"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) > len(text) / 2  # several tokens per CJK character: the case that matters
    detok = IncrementalDetokenizer(tokenizer)
    pieces = [detok.step(ids[: n + 1]) for n in range(len(ids))]
    pieces.append(detok.flush(ids))
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) == text
    assert sum(1 for piece in pieces if piece) > 5  # it streamed, rather than emitting at the end


def test_flush_drops_a_character_cut_off_by_the_token_limit(tokenizer) -> None:
    ids = tokenizer.encode("ok 发", add_special_tokens=False)
    cut = ids[:-1]  # the last byte of 发 is missing
    detok = IncrementalDetokenizer(tokenizer)
    streamed = "".join(detok.step(cut[: n + 1]) for n in range(len(cut))) + detok.flush(cut)
    assert streamed == "ok "


def test_rows_that_join_a_running_batch_decode_as_they_would_alone(model, tokenizer, prompts) -> None:
    # Continuous batching: the 2nd and 3rd prompts join after 3 and 5 steps of the 1st (their
    # caches are left-padded to the running batch's length and merged); each row's tokens
    # must be what it produces alone, seeded sampling included.
    seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=3)
    arrivals = {3: [JoiningRow(prompts[1], GREEDY)], 5: [JoiningRow(prompts[2], seeded)]}
    calls: list[int] = []

    def join(running: int) -> list[JoiningRow]:
        calls.append(running)
        return arrivals.get(len(calls), [])

    results, sink = run(model, tokenizer, [prompts[0]], [GREEDY], join=join)
    assert [r.token_ids for r in results] == [
        run(model, tokenizer, [prompts[0]], [GREEDY])[0][0].token_ids,
        run(model, tokenizer, [prompts[1]], [GREEDY])[0][0].token_ids,
        run(model, tokenizer, [prompts[2]], [seeded])[0][0].token_ids,
    ]
    assert set(sink.finished) == {0, 1, 2}
    assert calls[:5] == [1, 1, 1, 2, 2]  # rows still decoding when asked
    assert sink.text(1) == tokenizer.decode(results[1].token_ids)


def test_a_logits_constraint_restricts_its_row_only(model, tokenizer, prompts) -> None:
    allowed = tokenizer.encode("ab", add_special_tokens=False)

    class OnlyAllowed:
        def __init__(self) -> None:
            self.accepted: list[int] = []

        @property
        def terminated(self) -> bool:
            return len(self.accepted) >= 4

        @property
        def complete(self) -> bool:
            return self.terminated

        def mask(self, logits: Any, *, remaining: int) -> None:
            keep = logits[:, allowed].clone()
            logits.fill_(float("-inf"))
            logits[:, allowed] = keep

        def accept(self, token: int) -> bool:
            self.accepted.append(token)
            return True

        def report(self, finish_reason: str) -> dict[str, str] | None:
            return {"status": "complete"} if self.complete else None

    constraint = OnlyAllowed()
    results, sink = run(model, tokenizer, prompts[:2], [GREEDY] * 2, constraints=[constraint, None])
    assert set(results[0].token_ids) <= set(allowed) and results[0].completion_tokens == 4
    assert sink.finished[0]["finish_reason"] == "stop"  # the grammar terminated
    assert sink.finished[0]["structured"] == {"status": "complete"}
    assert "structured" not in sink.finished[1]  # plain rows carry no report
    assert results[1].token_ids == run(model, tokenizer, [prompts[1]], [GREEDY])[0][0].token_ids


def test_a_batch_that_never_empties_keeps_its_kv_cache_as_short_as_its_live_rows(
    model, tokenizer, prompts
) -> None:
    # Continuous batching under steady load: a row joins every other step and each lives 4
    # steps, so the batch never ends. The cache must not keep the columns of rows long gone
    # (left padding no row needs any more), or it grows with every step the batch has run.
    short = SamplingParams(max_tokens=4, temperature=0.0)
    widths: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda _module, _args, kwargs: widths.append(kwargs["attention_mask"].shape[1]), with_kwargs=True
    )
    calls: list[int] = []

    def join(running: int) -> list[JoiningRow]:
        calls.append(running)
        if len(calls) >= 60 or len(calls) % 2 == 0:
            return []
        return [JoiningRow(prompts[(len(calls) // 2) % 2], short)]  # the two prompts in turn

    try:
        results, sink = run(model, tokenizer, [prompts[0]], [short], join=join)
    finally:
        hook.remove()
    assert min(calls[:58]) >= 1  # the batch really never emptied
    assert len(sink.finished) == len(results) == 31
    # Bounded by the longest live row (prompt + its tokens), plus the columns of a row that
    # finished since the last join (cut at the next one); without the cut it reached 69.
    assert max(widths) <= max(len(p) for p in prompts[:2]) + short.max_tokens + 2
    alone = {i: run(model, tokenizer, [prompts[i]], [short])[0][0].token_ids for i in (0, 1)}
    assert [r.token_ids for r in results] == [alone[0]] + [alone[k % 2] for k in range(30)]


def test_a_token_the_constraint_rejects_fails_its_row_instead_of_passing_unchecked(
    model, tokenizer, prompts
) -> None:
    class Rejecting(AnyToken):
        def accept(self, token: int) -> bool:
            return False

    _, sink = run(model, tokenizer, prompts[:2], [GREEDY] * 2, constraints=[Rejecting(), None])
    assert "grammar rejected" in str(sink.failed[0]) and 0 not in sink.finished
    assert sink.finished[1]["finish_reason"] in {"stop", "length"}


def test_a_constrained_row_cut_by_max_tokens_says_its_json_is_incomplete(model, tokenizer, prompts) -> None:
    three = SamplingParams(max_tokens=3, temperature=0.0)
    _, sink = run(model, tokenizer, prompts[:1], [three], constraints=[AnyToken()])
    assert sink.finished[0]["finish_reason"] == "length"
    report = sink.finished[0]["structured"]
    assert report["status"] == "incomplete" and report["reason"] == "length"
    assert "max_tokens" in report["message"]


class AnyToken:
    """A constraint that allows every token: only here to be watched by a weak reference."""

    terminated = False
    complete = False

    def mask(self, logits: Any, *, remaining: int) -> None:
        pass

    def accept(self, token: int) -> bool:
        return True

    def report(self, finish_reason: str) -> dict[str, str] | None:
        return completeness(self, finish_reason)


def test_a_batch_that_keeps_admitting_forgets_each_row_when_it_finishes(model, tokenizer, prompts) -> None:
    # Steady load: 200 two-token requests join one batch, one per step, so it never empties.
    # Each row's state (prompt, detokenizer, constraint, result) must go when the row ends,
    # not when the batch does; the constraints stand for it, watched by weak references.
    short = SamplingParams(max_tokens=2, temperature=0.0)
    watched: list[weakref.ref[AnyToken]] = []
    alive_at_join: list[int] = []
    tokens_per_row: dict[int, int] = {}

    def join(running: int) -> list[JoiningRow]:
        alive_at_join.append(sum(ref() is not None for ref in watched))
        if len(watched) >= 200:
            return []
        constraint = AnyToken()
        watched.append(weakref.ref(constraint))
        return [JoiningRow(prompts[len(watched) % 2], short, constraint)]

    def count(index: int, result: Any) -> None:
        tokens_per_row[index] = result.completion_tokens  # the result itself is not kept

    decode_batch(model, tokenizer, [prompts[0]], [short], RecordingSink(), eos_ids=NO_EOS, join=join,
                 on_result=count)
    assert tokens_per_row == dict.fromkeys(range(201), 2)
    # A row lives 2 steps: at most the rows still decoding are held, never the 200 served.
    assert max(alive_at_join) <= 3, max(alive_at_join)
    assert all(ref() is None for ref in watched)
