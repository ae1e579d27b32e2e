"""The tensors of a running decode batch, and the two ways its rows change: drop and join.

A :class:`RunningBatch` holds, row by row, what the next decode step needs: the logits to
sample from, the KV cache, the attention mask (one column per cached position; left
padding is masked out), each row's next position id, and its sampling settings.

* :meth:`RunningBatch.select` keeps some rows (finished ones leave the batch and the cache).
* :meth:`RunningBatch.merge` appends rows that were just prefilled on their own: both caches
  are left-padded to the same length (padding masked out, positions are per row, so every
  row still computes exactly what it would alone) and concatenated along the batch. This is
  what lets a request join a batch that is already decoding (continuous batching) instead
  of waiting for the whole batch to end. The columns no remaining row attends to (left
  by rows that finished) are cut first: under steady load a batch may never end, and its
  cache must stay as long as its longest live row, not as long as the batch has run.

Merging needs a plain :class:`transformers.DynamicCache` (every layer a ``DynamicLayer``);
:func:`can_merge` says whether a cache qualifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(slots=True)
class RunningBatch:
    """Per-row decode state; ``active[j]`` is the request index of batch row ``j``."""

    active: list[int]
    logits: torch.Tensor
    cache: Any
    attention_mask: torch.Tensor
    next_position: torch.Tensor
    temperature: torch.Tensor
    top_p: torch.Tensor
    generators: list[torch.Generator]

    def select(self, keep: Sequence[int], model: Any) -> None:
        """Keep only batch rows ``keep`` (positions in the batch), in every per-row tensor."""
        index = torch.tensor(list(keep), dtype=torch.long, device=self.attention_mask.device)
        self.cache.batch_select_indices(index)
        if hasattr(model, "select_rows"):  # a wrapper with per-row state (vision's M-RoPE)
            model.select_rows(list(keep))
        self.logits = self.logits[index]
        self.attention_mask = self.attention_mask[index]
        self.next_position = self.next_position[index]
        self.temperature, self.top_p = self.temperature[index], self.top_p[index]
        self.generators = [self.generators[j] for j in keep]
        self.active = [self.active[j] for j in keep]

    def merge(self, other: RunningBatch) -> None:
        """Append ``other``'s rows (prefilled separately) to this batch."""
        self._drop_shared_padding()
        width = max(self.attention_mask.shape[1], other.attention_mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)])
            mine.values = torch.cat([_left_pad(mine.values, width), _left_pad(theirs.values, width)])
        self.attention_mask = torch.cat(
            [_left_pad(self.attention_mask, width, dim=1), _left_pad(other.attention_mask, width, dim=1)]
        )
        self.logits = torch.cat([self.logits, other.logits])
        self.next_position = torch.cat([self.next_position, other.next_position])
        self.temperature = torch.cat([self.temperature, other.temperature])
        self.top_p = torch.cat([self.top_p, other.top_p])
        self.generators += other.generators
        self.active += other.active

    def _drop_shared_padding(self) -> None:
        """Cut the leading cache columns that are padding in every row (all of them if no row is left)."""
        mask = self.attention_mask
        unused = int((mask.shape[1] - mask.sum(dim=1)).min()) if mask.shape[0] else mask.shape[1]
        if unused == 0:
            return
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[..., unused:, :], layer.values[..., unused:, :]
        self.attention_mask = mask[:, unused:]


def can_merge(cache: Any, model: Any) -> bool:
    """True when rows can join: a plain dynamic KV cache and no per-row model state."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None) or []
    return (
        bool(layers)
        and all(type(layer) is DynamicLayer for layer in layers)
        and not hasattr(model, "select_rows")
    )


def _left_pad(tensor: torch.Tensor, width: int, *, dim: int = -2) -> torch.Tensor:
    """Zeros before ``tensor``'s entries along ``dim`` up to ``width`` (masked out by the caller)."""
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
