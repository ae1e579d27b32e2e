"""Float32 linears laid out for small-batch decoding on the CPU (the CPU's decode fast path).

A decode step multiplies a few rows (one per live request) by every weight matrix, and
on the CPU it is bound by reading the weights from memory. With ``nn.Linear``'s row-major
``(out, in)`` weight, PyTorch's CPU ``addmm`` reads them at full speed for up to 3 rows
(a GEMV-like path) but runs a general SGEMM for 4 or more that repacks each weight on every
call: SmolLM2-135M's 30 layers of projections ran at 3.1 GB/s for 8 rows against 7.3 for
one (``docs/performance.md``, "Reasoner on the CPU"). Two changes, made once after loading:

* **column-major weights** (:func:`to_column_major`): each weight's storage becomes its
  transpose made contiguous (``weight`` is the ``.t()`` view of it: same values, same
  parameter, same memory). One row still runs at full speed (7.8 GB/s), 8 rows at 4.3;
* **packed copies** (:class:`PackedLinear`): each linear also holds its weight in MKL's
  packed GEMM format for ``rows`` rows (``REASONER_MAX_BATCH_SIZE``); 2 to ``rows`` rows
  are padded to ``rows`` (rows never mix in a GEMM: the padding costs compute, never
  changes a real row) and run on it at 6.4 GB/s. One row and longer inputs (prefill) use
  the plain weight. The LM head keeps its row-major weight, which the input embeddings
  share; only its packed copy is new. Memory: SmolLM2-135M's reasoner starts at 1.98 GiB
  resident instead of 1.00 (measured: ``docs/performance.md``).

Only float32 weights on the CPU are touched, and nothing is packed where this torch build
has no MKL. A row's logits differ from the untouched model's in the last bits only (other
SGEMM kernels); ``tests/reasoner/test_cpu_linear_backend.py`` checks that greedy tokens
on the real checkpoint stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True, slots=True)
class CpuLinearReport:
    """What :func:`prepare_cpu_linears` changed (logged at start-up)."""

    linears: int
    """How many float32 ``nn.Linear`` layers were laid out (column-major, and packed if ``packed_rows``)."""
    packed_rows: int
    """The row count the weights are packed for (0: not packed, column-major only)."""
    extra_bytes: int
    """About how much memory the packed copies add (their weights' size)."""

    def describe(self) -> str:
        packed = f"packed for {self.packed_rows} rows" if self.packed_rows else "not packed"
        return f"{self.linears} linears column-major, {packed}, about +{self.extra_bytes / 2**20:.0f} MiB"


def applies(model: Any) -> bool:
    """True for a float32 model on the CPU (the only case this layout is measured for)."""
    return torch.device(model.device).type == "cpu" and model.dtype == torch.float32


def prepare_cpu_linears(model: nn.Module, *, rows: int) -> CpuLinearReport:
    """Lay out ``model``'s float32 linears for decoding up to ``rows`` rows at a time, in place."""
    head = _output_head(model)
    pack = rows > 1 and packed_gemm_available()
    count = extra = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear or child.weight.dtype != torch.float32:
                continue
            if child is not head:  # the head's weight is the input embeddings' too: left row-major
                to_column_major(child)
            if pack:
                setattr(parent, name, PackedLinear(child, rows=rows))
                extra += child.weight.nbytes
            count += 1
    return CpuLinearReport(linears=count, packed_rows=rows if pack else 0, extra_bytes=int(extra))


def to_column_major(linear: nn.Linear) -> None:
    """Store ``linear``'s weight as its contiguous transpose (same values, same parameter name)."""
    weight = linear.weight
    if weight.dim() != 2 or weight.t().is_contiguous():
        return
    with torch.no_grad():
        linear.weight = nn.Parameter(weight.detach().t().contiguous().t(), requires_grad=False)


def packed_gemm_available() -> bool:
    return bool(torch.backends.mkl.is_available()) and hasattr(torch.ops.mkl, "_mkl_linear")


class PackedLinear(nn.Module):
    """A linear whose weight is also prepacked for MKL's GEMM at ``rows`` rows.

    One row (GEMV) and more than ``rows`` rows (prefill) use the plain weight; 2 to
    ``rows`` rows are padded to ``rows`` and use the packed copy.
    """

    def __init__(self, linear: nn.Linear, *, rows: int) -> None:
        super().__init__()
        self.rows = rows
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight  # a tied head's weight stays the embeddings' parameter
        self.bias = linear.bias
        with torch.no_grad():
            self.packed_weight: torch.Tensor = torch.ops.mkl._mkl_reorder_linear_weight(
                linear.weight.detach(), rows
            )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(-1, self.in_features)
        count = flat.shape[0]
        if count == 1 or count > self.rows or flat.dtype != torch.float32:
            return nn.functional.linear(hidden, self.weight, self.bias)
        if count < self.rows:  # rows never mix in a GEMM: the padding changes no real row
            padded = flat.new_zeros((self.rows, self.in_features))
            padded[:count] = flat
            flat = padded
        out = torch.ops.mkl._mkl_linear(flat, self.packed_weight, self.weight, self.bias, self.rows)
        return out[:count].reshape(*hidden.shape[:-1], self.out_features)


def _output_head(model: nn.Module) -> nn.Linear | None:
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if type(head) is nn.Linear and head.weight.dtype == torch.float32:
        return head
    return None
