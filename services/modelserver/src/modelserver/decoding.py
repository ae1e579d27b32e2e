"""The batched decode loop for causal LMs that the torch backends share (reasoner, vision GLM).

:func:`decode_batch` runs one batch to the end:

1. **Prefill**: the prompts are left-padded into one tensor (so every row's next token is
   at the last column), with an attention mask and position ids that count real tokens
   only, so a padded row computes exactly what it would alone.
2. **Decode**: one token per row per step through the KV cache; the mask grows by one
   column and each row's position by one. Each row samples on its own (temperature,
   top-p, a per-row ``torch.Generator`` so a seed reproduces whatever else is batched;
   greedy at temperature 0).
3. **Stop per row**: EOS, ``max_tokens``, or ``sink.is_cancelled`` (stop string matched
   or the caller left). A finished row is dropped from the batch and from the KV cache,
   so the remaining rows run at their own size; the loop ends when none is left.
4. **Join** (optional ``join`` callback): at every step boundary, requests that arrived
   meanwhile are prefilled on their own and merged into the running batch
   (:mod:`modelserver.kv_batch`), so a request never waits for a whole batch to end.
   Needs a plain dynamic KV cache and no per-row model state; otherwise nobody joins.
   A joining row with its own ``extra_inputs`` (vision: its image's ``pixel_values``) is
   prefilled alone with them; the others that join at that step are prefilled together.

5. **Static cache** (optional ``static_kv``, the GPU fast path): the rows live in a
   preallocated cache (:mod:`modelserver.static_kv`) whose step may be a CUDA graph
   (:mod:`modelserver.cuda_graphs`); the next step is launched before the sampled tokens
   reach the CPU, so the bookkeeping above overlaps it. Same tokens as the dynamic path.

Nothing per request outlives its row: a row's state (prompt, detokenizer, constraint,
result) is dropped when it finishes, and its :class:`RowResult` is handed to the optional
``on_result`` callback rather than collected, because under continuous batching a batch
may never end.

Text is streamed through ``sink.emit`` as it decodes. Detokenisation is incremental
(TGI's prefix/read offsets): only the newly stable suffix is emitted, and never while the
tail is an incomplete UTF-8 sequence (U+FFFD), so a multi-byte character split across
tokens arrives whole. Usage is exact: prompt tokens without padding, every generated
token (EOS included, as vLLM counts it).

The model is called as ``model(input_ids=..., attention_mask=..., position_ids=...,
past_key_values=..., use_cache=True, logits_to_keep=1, **extra)``; ``extra_inputs``
(e.g. ``pixel_values``) go to the prefill call only. A prefill output may carry
``rope_deltas`` ``(rows, 1)`` (M-RoPE models: vision's GLM-4V wrapper): each row's next
position is shifted by its delta once, and from then on travels with the row like any
position, so such a model joins running batches and uses the static cache like any other.
A model wrapper that keeps per-row state may define ``select_rows(keep)``; it is called
whenever the loop drops rows (and such a model never takes joiners).

Structured output: ``constraints`` gives each row an optional :class:`LogitsConstraint`
(built by :mod:`modelserver.structured` from ``response_format``). It masks that row's
logits before sampling and accepts the sampled token; the row finishes (``"stop"``) once
its grammar has terminated, or when it reaches its limit with the value already whole.
Its ``sink.finish`` then carries ``structured`` (the constraint's ``report``: complete, or
incomplete and why, for ``response_format`` answers), so a cut answer is never silently
invalid JSON. A token the grammar rejects (it cannot be sampled: masked tokens have
probability 0) fails the row rather than letting unchecked text through. Rows without a
constraint are untouched.

torch is imported by this module and its helpers (:mod:`modelserver.kv_batch`,
:mod:`modelserver.structured`, :mod:`modelserver.torch_runtime`) only; the rest of the
runtime stays torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from modelserver.backend import BatchSink, SamplingParams
from modelserver.errors import BackendError, InvalidRequestError
from modelserver.kv_batch import RunningBatch, can_merge
from modelserver.static_kv import StaticBatch, StaticKV, fetch_later

_REPLACEMENT = "\ufffd"  # what a tokenizer decodes an incomplete UTF-8 sequence to
_MIN_TEMPERATURE = 1e-5


class LogitsConstraint(Protocol):
    """A per-row restriction on the next token (e.g. a JSON grammar)."""

    @property
    def terminated(self) -> bool:
        """True once the constrained output is complete: the row stops."""

    def mask(self, logits: torch.Tensor, *, remaining: int) -> None:
        """Set forbidden entries of this row's ``(1, vocab)`` logits to -inf, in place.

        ``remaining`` is how many tokens the row may still generate (to close in time).
        """

    def accept(self, token: int) -> bool:
        """Advance by the sampled ``token``; False if the constraint rejects it."""

    @property
    def complete(self) -> bool:
        """True once the constrained value is whole (nothing but the end may follow)."""

    def report(self, finish_reason: str) -> dict[str, str] | None:
        """What the client is told about the constrained value when the row ends (None: nothing)."""


@dataclass(frozen=True, slots=True)
class JoiningRow:
    """A request that joins a batch already decoding (continuous batching)."""

    prompt: Sequence[int]
    params: SamplingParams
    constraint: LogitsConstraint | None = None
    extra_inputs: Mapping[str, Any] | None = None
    """Prefill-only model inputs of this row alone (e.g. its images); such a row is prefilled on its own."""


Joiner = Callable[[int], Sequence[JoiningRow]]
"""Called at each step boundary with the number of rows still decoding; returns rows to add.

Their sink indices follow the batch's: the first joiner is ``len(prompts)``, and so on."""


ResultCallback = Callable[[int, "RowResult"], None]
"""Called once per request index when its row ends, with what the row produced."""


@dataclass(slots=True)
class RowResult:
    """What one row produced (also reported to the sink)."""

    prompt_tokens: int
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    """``"stop"`` (EOS / cancelled), ``"length"`` (max_tokens or context), or None if failed."""
    text: str = ""
    prob_sum: float = 0.0

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def confidence(self) -> float | None:
        """Mean probability the model gave its chosen tokens."""
        return self.prob_sum / len(self.token_ids) if self.token_ids else None


class IncrementalDetokenizer:
    """Turns a growing token list into text deltas that never split a character."""

    def __init__(self, tokenizer: Any, *, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._prefix_offset = 0
        self._read_offset = 0

    def _decode(self, tokens: Sequence[int]) -> str:
        return str(
            self._tokenizer.decode(tokens, skip_special_tokens=self._skip, clean_up_tokenization_spaces=False)
        )

    def step(self, tokens: Sequence[int]) -> str:
        """The text ``tokens`` adds since the last call ("" while a character is incomplete)."""
        # Decoding a small window (not just the new token) keeps word-boundary spaces right
        # for tokenizers whose pieces decode differently at the start of a string.
        prefix = self._decode(tokens[self._prefix_offset : self._read_offset])
        current = self._decode(tokens[self._prefix_offset :])
        if len(current) > len(prefix) and not current.endswith(_REPLACEMENT):
            self._prefix_offset, self._read_offset = self._read_offset, len(tokens)
            return current[len(prefix) :]
        return ""

    def flush(self, tokens: Sequence[int]) -> str:
        """Whatever is still held at the end, minus a trailing incomplete character."""
        prefix = self._decode(tokens[self._prefix_offset : self._read_offset])
        current = self._decode(tokens[self._prefix_offset :]).rstrip(_REPLACEMENT)
        self._prefix_offset = self._read_offset = len(tokens)
        return current[len(prefix) :] if len(current) > len(prefix) else ""


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """The ids that end generation: the generation config's, else the tokenizer's."""
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    for source in (getattr(config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, Iterable):
            ids.update(int(token) for token in source)
    return ids


def decode_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    params: Sequence[SamplingParams],
    sink: BatchSink,
    *,
    extra_inputs: Mapping[str, Any] | None = None,
    eos_ids: Iterable[int] | None = None,
    max_context: int | None = None,
    skip_special_tokens: bool = True,
    constraints: Sequence[LogitsConstraint | None] | None = None,
    join: Joiner | None = None,
    on_result: ResultCallback | None = None,
    static_kv: StaticKV | None = None,
) -> None:
    """Decode ``prompts`` (token ids) together, streaming to ``sink``, until no row is left.

    ``sink.finish`` is called exactly once per row (``sink.fail`` instead for a prompt that
    does not fit ``max_context``); then ``on_result(index, result)`` gets the row's
    :class:`RowResult` (``finish_reason`` None if it failed) and the loop forgets the row.
    Runs under ``torch.inference_mode``. With ``static_kv`` the rows decode in that
    preallocated cache (:mod:`modelserver.static_kv`; CUDA graphs when captured) instead of
    a dynamic one; a row's prompt plus answer is then capped at its length.
    """
    if len(prompts) != len(params):
        raise ValueError(f"{len(prompts)} prompts but {len(params)} sampling params")
    if constraints is not None and len(constraints) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(constraints)} constraints")
    with torch.inference_mode():
        _Decoder(
            model,
            tokenizer,
            prompts,
            params,
            sink,
            extra_inputs=extra_inputs,
            eos_ids=eos_ids,
            max_context=max_context,
            skip_special_tokens=skip_special_tokens,
            constraints=constraints,
            join=join,
            on_result=on_result,
            static_kv=static_kv,
        ).run()


@dataclass(slots=True)
class _Row:
    """One request's decode state, kept from its admission until it ends."""

    prompt: Sequence[int]
    params: SamplingParams
    result: RowResult
    detok: IncrementalDetokenizer
    limit: int
    """How many tokens the row may generate: max_tokens, capped by the context."""
    constraint: LogitsConstraint | None


class _Decoder:
    """State of one :func:`decode_batch` call (``active`` maps batch rows to request indices)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompts: Sequence[Sequence[int]],
        params: Sequence[SamplingParams],
        sink: BatchSink,
        *,
        extra_inputs: Mapping[str, Any] | None,
        eos_ids: Iterable[int] | None,
        max_context: int | None,
        skip_special_tokens: bool,
        constraints: Sequence[LogitsConstraint | None] | None = None,
        join: Joiner | None = None,
        on_result: ResultCallback | None = None,
        static_kv: StaticKV | None = None,
    ) -> None:
        self.model = model
        self.static_kv = static_kv
        if static_kv is not None:  # a row's prompt and answer must fit one slot of the static cache
            max_context = static_kv.max_len if max_context is None else min(max_context, static_kv.max_len)
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.sink = sink
        self.join = join
        self.on_result = on_result
        self.max_context = max_context
        self.extra_inputs = dict(extra_inputs or {})
        self.device = torch.device(model.device)
        self.eos = set(eos_ids) if eos_ids is not None else eos_token_ids(model, tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else next(iter(self.eos), 0))
        # The rows not yet ended, by request index (the sink's); joiners get the next indices.
        self.rows: dict[int, _Row] = {}
        self.next_index = 0
        for i, prompt in enumerate(prompts):
            self._add_row(prompt, params[i], constraints[i] if constraints is not None else None)

    def _add_row(
        self, prompt: Sequence[int], params: SamplingParams, constraint: LogitsConstraint | None
    ) -> int:
        wanted = max(0, params.max_tokens)
        limit = wanted if self.max_context is None else min(wanted, max(0, self.max_context - len(prompt)))
        detok = IncrementalDetokenizer(self.tokenizer, skip_special_tokens=self.skip_special_tokens)
        index = self.next_index
        result = RowResult(prompt_tokens=len(prompt))
        self.rows[index] = _Row(prompt, params, result, detok, limit, constraint)
        self.next_index += 1
        return index

    def _end(self, index: int) -> None:
        """Forget a row that finished or failed, handing its result to ``on_result``."""
        row = self.rows.pop(index)
        if self.on_result is not None:
            self.on_result(index, row.result)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        active = self._admit(list(self.rows))
        if not active:
            return
        extra = {key: _to_device(value, self.device) for key, value in self.extra_inputs.items()}
        prefilled = self._prefill(active, extra)
        batch: RunningBatch | StaticBatch
        if self.static_kv is not None:
            batch = self.static_kv.start(prefilled)
            joinable = self.join is not None
        else:
            batch = prefilled
            joinable = self.join is not None and can_merge(prefilled.cache, self.model)
        while batch.active:
            self._constrain(batch.logits, batch.active)
            tokens, probs = _sample(
                batch.logits,
                batch.temperature,
                batch.top_p,
                batch.generators,
                any_sampling=any(not self.rows[i].params.greedy for i in batch.active),
            )
            if isinstance(batch, StaticBatch):
                # Overlap: the next step is launched for every row before this step's tokens
                # reach the CPU, so the GPU computes while the rows are recorded and streamed.
                # Rows that finished leave right after (their one extra token is never read).
                fetch = fetch_later(tokens, probs)
                batch.step(tokens)
                keep = self._advance(batch.active, *fetch())
                if len(keep) < len(batch.active):
                    batch.select(keep, self.model)
            else:
                keep = self._advance(batch.active, tokens.tolist(), probs.tolist())
                if len(keep) < len(batch.active):  # drop finished rows from every per-row tensor
                    batch.select(keep, self.model)
                    tokens = tokens[torch.tensor(keep, dtype=torch.long, device=self.device)]
                if batch.active:
                    self._step(batch, tokens)
            if joinable:
                for joined, inputs in self._join(len(batch.active)):
                    batch.merge(self._prefill(joined, inputs))

    def _prefill(self, rows: list[int], extra: Mapping[str, Any]) -> RunningBatch:
        """One forward pass over ``rows``' prompts (left-padded): their state for decoding."""
        input_ids, attention_mask, position_ids = self._left_pad([self.rows[i].prompt for i in rows])
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=None,
            use_cache=True,
            logits_to_keep=1,
            **extra,
        )
        params = [self.rows[i].params for i in rows]
        next_position = position_ids[:, -1:] + 1
        deltas = getattr(out, "rope_deltas", None)
        if deltas is not None:  # M-RoPE: after an image a row's positions run off its token count
            next_position = next_position + deltas.to(next_position.device, next_position.dtype)
        return RunningBatch(
            active=list(rows),
            logits=out.logits[:, -1, :],
            cache=out.past_key_values,
            attention_mask=attention_mask,
            next_position=next_position,
            temperature=torch.tensor(
                [max(p.temperature, 0.0) for p in params], dtype=torch.float32, device=self.device
            ),
            top_p=torch.tensor([p.top_p for p in params], dtype=torch.float32, device=self.device),
            generators=[self._generator(p) for p in params],
        )

    def _step(self, batch: RunningBatch, tokens: torch.Tensor) -> None:
        """One decode step: feed each row's sampled token, keep the next logits."""
        batch.attention_mask = torch.cat(
            [batch.attention_mask, batch.attention_mask.new_ones((len(batch.active), 1))], dim=1
        )
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=batch.attention_mask,
            position_ids=batch.next_position,
            past_key_values=batch.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        batch.cache = out.past_key_values
        batch.next_position = batch.next_position + 1
        batch.logits = out.logits[:, -1, :]

    def _join(self, running: int) -> list[tuple[list[int], Mapping[str, Any]]]:
        """Requests that join at this step boundary, admitted like the first ones, by prefill group.

        Rows without ``extra_inputs`` share one prefill; a row with them is prefilled alone.
        """
        assert self.join is not None
        plain: list[int] = []
        groups: list[tuple[list[int], Mapping[str, Any]]] = []
        for row in self.join(running):
            index = self._add_row(row.prompt, row.params, row.constraint)
            if not row.extra_inputs:
                plain.append(index)
            elif self._admit([index]):
                extra = {key: _to_device(value, self.device) for key, value in row.extra_inputs.items()}
                groups.append(([index], extra))
        if plain and (admitted := self._admit(plain)):
            groups.insert(0, (admitted, {}))
        return groups

    def _constrain(self, logits: torch.Tensor, active: list[int]) -> None:
        """Let each constrained row mask its own logits (a no-op when no row has a constraint)."""
        for j, i in enumerate(active):
            row = self.rows[i]
            if row.constraint is not None:
                remaining = row.limit - len(row.result.token_ids)
                row.constraint.mask(logits[j : j + 1], remaining=remaining)

    def _admit(self, indices: Iterable[int]) -> list[int]:
        """The rows that need a forward pass; the others are finished or failed right away."""
        active = []
        for i in indices:
            row = self.rows[i]
            prompt_tokens = len(row.prompt)
            if not row.prompt:
                self._fail(i, InvalidRequestError("the prompt is empty after applying the chat template"))
            elif row.limit == 0 and row.params.max_tokens > 0:
                self._fail(
                    i,
                    InvalidRequestError(
                        f"the prompt is {prompt_tokens} tokens, which fills the model's context; shorten it",
                        param="messages",
                        code="context_length_exceeded",
                    ),
                )
            elif row.limit == 0 or self.sink.is_cancelled(i):
                self._finish(i, "length" if row.limit == 0 else "stop")
            else:
                active.append(i)
        return active

    def _advance(self, active: list[int], tokens: list[int], probs: list[float]) -> list[int]:
        """Record one sampled token per active row; the batch positions of rows that go on."""
        keep = []
        for j, i in enumerate(active):
            row = self.rows[i]
            result, constraint, token = row.result, row.constraint, tokens[j]
            result.token_ids.append(token)
            result.prob_sum += probs[j]
            if constraint is not None and not constraint.accept(token):
                self._fail(i, BackendError(f"the structured-output grammar rejected token {token}"))
                continue
            if token in self.eos:
                self._finish(i, "stop")
                continue
            if text := row.detok.step(result.token_ids):
                result.text += text
                self.sink.emit(i, text)
            if constraint is not None and constraint.terminated:
                self._finish(i, "stop")
            elif len(result.token_ids) >= row.limit:
                # A value already whole at the limit is a complete answer (only EOS was missing).
                self._finish(i, "stop" if constraint is not None and constraint.complete else "length")
            elif self.sink.is_cancelled(i):
                self._finish(i, "stop")
            else:
                keep.append(j)
        return keep

    def _fail(self, index: int, error: Exception) -> None:
        self.sink.fail(index, error)
        self._end(index)

    def _finish(self, index: int, reason: str) -> None:
        row = self.rows[index]
        result = row.result
        if tail := row.detok.flush(result.token_ids):
            result.text += tail
            self.sink.emit(index, tail)
        result.finish_reason = reason
        usage: dict[str, Any] = {}
        if row.constraint is not None and (report := row.constraint.report(reason)) is not None:
            usage["structured"] = report
        self.sink.finish(
            index,
            finish_reason=reason,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            confidence=result.confidence,
            **usage,
        )
        self._end(index)

    # -- tensors --------------------------------------------------------------------------

    def _left_pad(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(prompt) for prompt in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1
        # Positions count real tokens only: a padded row sees the positions it would alone.
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return input_ids.to(self.device), attention_mask.to(self.device), position_ids.to(self.device)

    def _generator(self, params: SamplingParams) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        if params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(params.seed)
        return generator


def _sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    generators: Sequence[torch.Generator],
    *,
    any_sampling: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row (greedy where temperature is 0) and the probability it had."""
    logits = logits.float()
    greedy = logits.argmax(dim=-1)
    if not any_sampling:
        chosen = greedy
        probs = torch.softmax(logits, dim=-1)
        return chosen, probs.gather(-1, chosen[:, None]).squeeze(-1)
    scaled = logits / temperature.clamp(min=_MIN_TEMPERATURE)[:, None]
    probs = torch.softmax(scaled, dim=-1)
    if bool((top_p < 1.0).any()):
        # Nucleus: keep the smallest head whose mass reaches top_p (the first token always
        # stays). Sorting the vocabulary costs about a forward step of a small model, so it
        # is done only when some row asks for it.
        probs, order = probs.sort(dim=-1, descending=True)
        mass_before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(mass_before >= top_p[:, None], 0.0)
    else:
        order = None
    cumulative = probs.cumsum(dim=-1)
    # Inverse-CDF sampling with one uniform draw per row from that row's own generator, so a
    # seeded row is reproducible whatever else shares the batch; all rows sample in one op.
    draws = torch.stack([torch.rand((), generator=g, device=logits.device) for g in generators])
    targets = (draws * cumulative[:, -1]).unsqueeze(-1)
    picks = torch.searchsorted(cumulative, targets, right=True).clamp(max=logits.shape[-1] - 1)
    sampled = (picks if order is None else order.gather(-1, picks)).squeeze(-1)
    # A draw that rounds up to the total mass lands past the last allowed token (float32
    # sums): such a row takes its greedy token instead, never a masked (-inf) one.
    possible = torch.isfinite(logits.gather(-1, sampled[:, None]).squeeze(-1))
    chosen = torch.where((temperature > 0) & possible, sampled, greedy)
    plain = torch.softmax(logits, dim=-1)
    return chosen, plain.gather(-1, chosen[:, None]).squeeze(-1)


def _to_device(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value
