"""Float32 linears packed for oneDNN's inner product: the CPU's fast path for decode and prefill.

A decode step multiplies a few rows (one per live request) by every weight matrix, so on
the CPU it is bound by how fast the weights stream from memory. PyTorch's ``nn.Linear``
runs that through a BLAS call on the plain row-major weight; oneDNN's inner product over a
weight reordered once into its blocked layout (``torch.ops.mkldnn._reorder_linear_weight``,
what vLLM's CPU build and inductor use) streams it much faster. ``bench/cpu_linear_layouts.py``
on this project's 2-core AMD EPYC (AVX-512), SmolLM2-135M's 30 layers of projections:

* 1 row: 21.5 GB/s against 12.7 row-major (1.69x); 8 rows: 20.4 against 10.9 (1.86x;
  MKL's packed GEMM, this module's earlier layout, ran at 7.7);
* the 49k-row LM head: 4.0 ms against 9.4 (1 row) and 15.0 (8 rows);
* a prefill of 368 tokens: 1.15x (projections), 1.42x (head).

Figures, commands and the machine: ``docs/performance.md``, "Reasoner on the CPU". The
ranking depends on the CPU: where oneDNN's row is not the fastest, run the bench and set
``REASONER_CPU_LINEAR=false``.

:func:`prepare_cpu_linears` replaces every float32 ``nn.Linear`` of a model on the CPU by a
:class:`PackedLinear` that holds the packed weight **instead of** the plain one, so the
weights take no more memory than before. The output head keeps its plain ``weight`` too
(the input embeddings share it, and code that reads the vocabulary size looks at it), so
its packed copy is the only memory added (SmolLM2-135M: 108 MiB).

A row's result does not depend on the other rows of the call, whatever their number (one
decoding row, 8, or a 400-token prefill give the same bits for it: tested), so batching
never changes a greedy answer. Against ``nn.Linear`` a result differs in the last bits
(another summation order); ``tests/reasoner/test_cpu_linear_backend.py`` checks that the
real checkpoint's greedy answers stay the same. Where this torch build has no oneDNN
(or it refuses float32 packing), the model is left as it is.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True, slots=True)
class CpuLinearReport:
    """What :func:`prepare_cpu_linears` changed (logged at start-up)."""

    linears: int
    """How many float32 ``nn.Linear`` layers were packed (0: none, or oneDNN is not available)."""
    packed_rows: int
    """The batch size the packing was tuned for (``MAX_BATCH_SIZE``); any row count runs on it."""
    extra_bytes: int
    """Memory added: the output head's packed copy (the other linears trade their weight for it)."""

    def describe(self) -> str:
        if not self.linears:
            return (
                "nothing packed (no float32 linears, or no oneDNN float32 inner product in this torch build)"
            )
        return (
            f"{self.linears} linears packed for oneDNN (tuned for {self.packed_rows} rows), "
            f"about +{self.extra_bytes / 2**20:.0f} MiB"
        )


def applies(model: Any) -> bool:
    """True for a float32 model on the CPU (the only case this layout is measured for)."""
    return torch.device(model.device).type == "cpu" and model.dtype == torch.float32


def prepare_cpu_linears(model: nn.Module, *, rows: int) -> CpuLinearReport:
    """Replace ``model``'s float32 ``nn.Linear`` layers by :class:`PackedLinear` ones, in place."""
    if not packed_linear_available():
        return CpuLinearReport(linears=0, packed_rows=0, extra_bytes=0)
    head = _output_head(model)
    count = extra = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear or child.weight.dtype != torch.float32:
                continue
            keep = child is head
            setattr(parent, name, PackedLinear(child, rows=rows, keep_weight=keep))
            count += 1
            extra += child.weight.nbytes if keep else 0
    return CpuLinearReport(linears=count, packed_rows=rows if count else 0, extra_bytes=int(extra))


@functools.cache
def packed_linear_available() -> bool:
    """Whether this torch build packs and multiplies float32 weights with oneDNN (tried once)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    try:
        weight, x = torch.ones((8, 4)), torch.ones((2, 4))
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, 2)
        out = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
    except RuntimeError:
        return False
    return bool(torch.equal(out, torch.full((2, 8), 4.0)))


def is_packed(model: nn.Module) -> bool:
    """True when :func:`prepare_cpu_linears` has packed ``model``'s linears."""
    return any(isinstance(module, PackedLinear) for module in model.modules())


class PackedLinear(nn.Module):
    """A float32 linear whose weight lives in oneDNN's blocked layout (any number of rows).

    ``keep_weight`` keeps the plain ``weight`` as well (the output head: the embeddings
    share it); other layers drop it, so ``weight`` is absent and the memory is the same.
    """

    def __init__(self, linear: nn.Linear, *, rows: int, keep_weight: bool = False) -> None:
        super().__init__()
        self.rows = rows
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        if keep_weight:
            self.weight = linear.weight
        self.bias = linear.bias
        with torch.no_grad():
            # An opaque oneDNN tensor, not a parameter: nothing trains or saves it.
            self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), max(1, rows))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(hidden, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, packed for {self.rows} rows"
        )


def _output_head(model: nn.Module) -> nn.Linear | None:
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if type(head) is nn.Linear and head.weight.dtype == torch.float32:
        return head
    return None
