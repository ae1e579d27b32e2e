"""A static KV cache: fixed slots × a fixed length, allocated once, so a decode step has fixed shapes.

Today's decode path (:mod:`modelserver.kv_batch`) grows a dynamic cache by one column per
step and re-pads it whenever rows join: every step allocates, and its shapes change, so it
cannot be captured in a CUDA graph. Here the cache is one buffer per K and V of shape
``(layers, slots, kv_heads, max_len, head_dim)``, allocated at start-up and bounded by a
setting (its bytes are known before the first request).

Layout of a running batch (:class:`StaticBatch`):

* live rows sit in slots ``0 .. n-1``; a row that leaves is replaced by moving the later
  rows down (one copy per moved row, outside the step);
* **all rows write at one shared column** per step (``column``); a row's history is the
  contiguous run of columns just left of it. A joining row's prefill KV (computed on its
  own, as today) is copied right-aligned so that it ends where the shared column is;
* a per-row additive mask ``(slots, 1, 1, max_len)`` (0 = attend, dtype-min = ignore)
  marks each row's valid columns; positions are per row, so each row computes exactly what
  it would alone;
* when the column reaches the end of the buffer (or the live window could fall into a
  shorter length bucket), the live window is shifted left (**compaction**), outside the step.

The model is called with ``attention_mask`` already 4-D (transformers' ``create_causal_mask``
returns a 4-D mask as it is, for GLM-4, GLM-4V and Llama alike) and ``past_key_values`` a
:class:`SlotCache` over views of the buffers, whose ``update`` writes the new K/V at the
shared column and returns the whole (bucketed) window. The step's attention reads
``length_bucket(column + 1)`` columns, not the whole buffer.

:mod:`modelserver.cuda_graphs` captures this step per (batch bucket, length bucket) on a
GPU; on the CPU (and when capture is off or failed) the same step runs eagerly, which is
what the unit tests check against the dynamic path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from modelserver.kv_batch import RunningBatch

log = logging.getLogger(__name__)

MIN_LENGTH_BUCKET = 256
ALIGN = 64
"""A planned row length is a multiple of this (when it is at least that long)."""
"""The shortest attention window a step reads (then doubling up to ``max_len``)."""


def fetch_later(tokens: torch.Tensor, probs: torch.Tensor) -> Callable[[], tuple[list[int], list[float]]]:
    """Start copying a step's sampled tokens and probabilities to the CPU; the call waits for them.

    On CUDA the copy is queued now, before the next step is launched, so waiting for it
    does not wait for that step (a plain ``.tolist()`` later would).
    """
    if tokens.device.type != "cuda":
        return lambda: (tokens.tolist(), probs.tolist())
    packed = torch.stack([tokens.to(torch.float64), probs.to(torch.float64)])
    host = torch.empty(packed.shape, dtype=torch.float64, pin_memory=True)
    host.copy_(packed, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()

    def wait() -> tuple[list[int], list[float]]:
        copied.synchronize()
        return [int(t) for t in host[0].tolist()], host[1].tolist()

    return wait


class StepRunner(Protocol):
    """Runs one decode step for ``rows`` rows over ``width`` columns; returns ``(rows, vocab)`` logits."""

    def __call__(self, rows: int, width: int) -> torch.Tensor: ...


@dataclass(frozen=True, slots=True)
class KVShape:
    """What one cached token costs: the model's layer count, KV heads and head size."""

    layers: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, model: Any) -> KVShape:
        config = model.config
        config = getattr(config, "text_config", None) or config
        heads = int(config.num_attention_heads)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        return cls(int(config.num_hidden_layers), int(kv_heads), int(head_dim))

    def bytes_per_token(self, dtype: torch.dtype) -> int:
        """K and V of one token in every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * torch.empty((), dtype=dtype).element_size()


def plan_max_len(
    shape: KVShape,
    dtype: torch.dtype,
    *,
    slots: int,
    wanted_len: int,
    budget_bytes: int,
    context: int | None,
) -> int:
    """The row length (tokens) that ``slots`` rows get within ``budget_bytes`` (0 if not even one token)."""
    fits = budget_bytes // max(1, slots * shape.bytes_per_token(dtype))
    length = min(wanted_len, fits, context or wanted_len)
    if length >= ALIGN:  # attention kernels want the key length (and mask rows) 16-byte aligned
        length -= length % ALIGN
    return int(length)


def length_buckets(max_len: int, shortest: int = MIN_LENGTH_BUCKET) -> list[int]:
    """Attention windows a step may read: ``shortest``, twice that, ... and ``max_len`` itself."""
    buckets = []
    width = shortest
    while width < max_len:
        buckets.append(width)
        width *= 2
    buckets.append(max_len)
    return buckets


def batch_buckets(slots: int) -> list[int]:
    """Batch sizes a step is run at: 1, 2, 4, 8, ... and ``slots`` itself."""
    buckets = []
    size = 1
    while size < slots:
        buckets.append(size)
        size *= 2
    buckets.append(slots)
    return buckets


def bucket_for(value: int, buckets: Sequence[int]) -> int:
    for bucket in buckets:
        if bucket >= value:
            return bucket
    raise ValueError(f"{value} exceeds the largest bucket {buckets[-1]}")


class SlotCache:
    """What the model sees as ``past_key_values``: per-layer views written at the shared column.

    Duck-typed (transformers models call ``update`` and, without position ids,
    ``get_seq_length``); it is not a ``transformers.Cache``, so the mask helpers use the
    4-D mask they are given and never ask it for sizes.
    """

    is_compileable = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, column: torch.Tensor) -> None:
        self.keys = keys
        self.values = values
        self.column = column

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys.index_copy_(2, self.column, key_states.to(keys.dtype))
        values.index_copy_(2, self.column, value_states.to(values.dtype))
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        raise RuntimeError("the static KV cache needs explicit position_ids")


class StaticKV:
    """The buffers (KV, mask, step inputs) shared by every batch a backend runs; one batch at a time."""

    def __init__(
        self,
        model: Any,
        *,
        slots: int,
        max_len: int,
        device: torch.device | str,
        dtype: torch.dtype,
        shortest_window: int = MIN_LENGTH_BUCKET,
    ) -> None:
        if slots < 1 or max_len < 2:
            raise ValueError(f"a static KV cache needs slots >= 1 and max_len >= 2 (got {slots}, {max_len})")
        self.model = model
        self.shape = KVShape.of(model)
        self.slots = slots
        self.max_len = max_len
        self.device = torch.device(device)
        self.dtype = dtype
        self.length_buckets = length_buckets(max_len, shortest_window)
        self.batch_buckets = batch_buckets(slots)
        s = self.shape
        buffer = (s.layers, slots, s.kv_heads, max_len, s.head_dim)
        self.keys = torch.zeros(buffer, dtype=dtype, device=self.device)
        self.values = torch.zeros(buffer, dtype=dtype, device=self.device)
        self.blocked = torch.finfo(dtype).min
        self.mask = torch.full((slots, 1, 1, max_len), self.blocked, dtype=dtype, device=self.device)
        self.input_ids = torch.zeros((slots, 1), dtype=torch.long, device=self.device)
        self.positions = torch.zeros((slots, 1), dtype=torch.long, device=self.device)
        self.column = torch.zeros((1,), dtype=torch.long, device=self.device)
        self.runner: StepRunner | None = None
        """Set by :mod:`modelserver.cuda_graphs` once graphs are captured; None → eager steps."""
        self.compute: StepRunner = self.transformers_step
        """What a step runs (graphs capture it): transformers' forward or :mod:`modelserver.fused_step`'s."""
        self.step_name = "transformers"
        self.graph_steps = 0
        self.eager_steps = 0
        self.compactions = 0

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.values.nbytes + self.mask.nbytes)

    def describe(self) -> str:
        return (
            f"{self.slots} slots × {self.max_len} tokens, {self.nbytes / 2**30:.2f} GiB "
            f"({self.shape.bytes_per_token(self.dtype)} B/token), decode step: {self.step_name}"
        )

    def eager_step(self, rows: int, width: int) -> torch.Tensor:
        """One decode step over slots ``0..rows-1`` and columns ``0..width-1``, launched from Python."""
        return self.compute(rows, width)

    def transformers_step(self, rows: int, width: int) -> torch.Tensor:
        """The step as transformers' modelling code runs it (any architecture)."""
        cache = SlotCache(self.keys[:, :rows, :, :width], self.values[:, :rows, :, :width], self.column)
        out = self.model(
            input_ids=self.input_ids[:rows],
            attention_mask=self.mask[:rows, :, :, :width],
            position_ids=self.positions[:rows],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :]

    def step(self, rows: int, width: int) -> torch.Tensor:
        """Logits of the step for ``rows`` live rows; the window is bucketed, the batch too on graphs."""
        window = bucket_for(width, self.length_buckets)
        if self.runner is not None:
            self.graph_steps += 1
            return self.runner(rows, window)
        self.eager_steps += 1
        return self.eager_step(rows, window)

    def start(self, prefilled: RunningBatch) -> StaticBatch:
        """A new batch in the slots, from the rows just prefilled (their dynamic cache)."""
        batch = StaticBatch(self)
        batch.merge(prefilled)
        return batch


class StaticBatch:
    """A running batch in a :class:`StaticKV`: :class:`~modelserver.kv_batch.RunningBatch`'s interface.

    ``active[j]`` is the request index in slot ``j``; ``starts[j]`` the first column of its
    history; ``column`` the shared write column of the next step.
    """

    def __init__(self, kv: StaticKV) -> None:
        self.kv = kv
        self.active: list[int] = []
        self.starts: list[int] = []
        self.column = 0
        self.logits = torch.empty((0, 0), device=kv.device)
        self.temperature = torch.empty((0,), dtype=torch.float32, device=kv.device)
        self.top_p = torch.empty((0,), dtype=torch.float32, device=kv.device)
        self.generators: list[torch.Generator] = []

    @property
    def rows(self) -> int:
        return len(self.active)

    # -- the RunningBatch interface ---------------------------------------------------------

    def select(self, keep: Sequence[int], model: Any) -> None:
        """Keep slots ``keep`` (ascending): later rows move down into the freed slots."""
        kv = self.kv
        low, column = self._low(), self.column
        for target, source in enumerate(keep):
            if source != target:  # source > target: a row only ever moves down, never over a kept one
                kv.keys[:, target, :, low:column].copy_(kv.keys[:, source, :, low:column])
                kv.values[:, target, :, low:column].copy_(kv.values[:, source, :, low:column])
                kv.mask[target].copy_(kv.mask[source])
                kv.positions[target].copy_(kv.positions[source])
        index = torch.tensor(list(keep), dtype=torch.long, device=self.logits.device)
        self.logits = self.logits[index]
        self.temperature, self.top_p = self.temperature[index], self.top_p[index]
        self.generators = [self.generators[j] for j in keep]
        self.active = [self.active[j] for j in keep]
        self.starts = [self.starts[j] for j in keep]
        if not self.active:
            self.column = 0

    def merge(self, other: RunningBatch) -> None:
        """Copy rows prefilled on their own (a dynamic cache) into the next free slots."""
        kv = self.kv
        joining = len(other.active)
        width = int(other.attention_mask.shape[1])
        if self.rows + joining > kv.slots:
            raise RuntimeError(f"{self.rows} + {joining} rows exceed the static cache's {kv.slots} slots")
        if width > kv.max_len:
            raise RuntimeError(f"a {width}-token prefill exceeds the static cache's {kv.max_len} columns")
        if not self.active:
            self.starts, self.column = [], 0
        if self.column < width:  # the joiners' history must end at the shared column: make room
            self._move_window(width)
        lo, hi = self.rows, self.rows + joining
        first = self.column - width
        for layer, cached in enumerate(other.cache.layers):
            kv.keys[layer, lo:hi, :, first : self.column].copy_(cached.keys)
            kv.values[layer, lo:hi, :, first : self.column].copy_(cached.values)
        valid = other.attention_mask.to(torch.bool)
        rows_mask = kv.mask[lo:hi, 0, 0]
        rows_mask.fill_(kv.blocked)
        rows_mask[:, first : self.column].masked_fill_(valid, 0.0)
        kv.positions[lo:hi].copy_(other.next_position)
        padding = (width - valid.sum(dim=1)).tolist()
        self.starts += [first + int(p) for p in padding]
        self.active += other.active
        self.logits = other.logits if not lo else torch.cat([self.logits, other.logits])
        self.temperature = torch.cat([self.temperature, other.temperature])
        self.top_p = torch.cat([self.top_p, other.top_p])
        self.generators += other.generators

    # -- the step ---------------------------------------------------------------------------

    def step(self, tokens: torch.Tensor) -> None:
        """Feed each row its sampled token at the shared column; keep the next logits."""
        kv, rows = self.kv, self.rows
        self._compact_if_needed()
        column = self.column
        kv.input_ids[:rows, 0].copy_(tokens)
        kv.mask[:rows, 0, 0, column] = 0.0
        kv.column.fill_(column)
        self.logits = kv.step(rows, column + 1)
        kv.positions[:rows] += 1
        self.column = column + 1

    def _low(self) -> int:
        """The first column any live row uses (the live window is ``[low, column)``)."""
        return min(self.starts) if self.starts else self.column

    def _compact_if_needed(self) -> None:
        low, column, buckets = self._low(), self.column, self.kv.length_buckets
        if column >= self.kv.max_len:
            self._move_window(column - low)
        elif low and bucket_for(column - low + 1, buckets) < bucket_for(column + 1, buckets):
            self._move_window(column - low)  # a shorter attention window for every later step

    def _move_window(self, new_column: int) -> None:
        """Shift the live window ``[low, column)`` of every live row so that it ends at ``new_column``."""
        kv, rows = self.kv, self.rows
        low, column = self._low(), self.column
        span = column - low
        if new_column > kv.max_len or new_column < span:
            raise RuntimeError(
                f"cannot move a {span}-column window to end at {new_column} (max {kv.max_len})"
            )
        shift = new_column - column
        if shift < 0:
            kv.compactions += 1
        if shift and rows:
            start = low + shift
            for buffer in (kv.keys, kv.values):
                buffer[:, :rows, :, start:new_column] = buffer[:, :rows, :, low:column].clone()
            moved = kv.mask[:rows, :, :, low:column].clone()
            kv.mask[:rows].fill_(kv.blocked)
            kv.mask[:rows, :, :, start:new_column] = moved
        self.starts = [s + shift for s in self.starts]
        self.column = new_column
