"""Float32 linears laid out for small-batch decoding on the CPU (the CPU's decode fast path).

A decode step multiplies a few rows (one per live request) by every weight matrix. With
``nn.Linear``'s row-major ``(out, in)`` weight, PyTorch's CPU ``addmm`` takes a GEMV-like
path for up to 3 rows but a general SGEMM for 4 or more that repacks the whole weight on
every call: at 8 rows a 576x576 projection took 440 us instead of 60, and the decode step
of SmolLM2-135M was as slow at batch 8 as eight batch-1 steps would nearly be
(``docs/performance.md``, "Reasoner on the CPU"). Two changes, both made once after loading:

* **column-major weights** (:func:`to_column_major`): each ``nn.Linear`` keeps its class and
  its ``weight`` parameter, but the storage is the transposed matrix made contiguous
  (``weight`` is its ``.t()`` view, so the memory is the same and ``state_dict`` still
  reads it). ``F.linear`` then multiplies by a contiguous ``(in, out)`` matrix, which MKL
  runs at the same cost for 1 to 8 rows;
* **a prepacked LM head** (:class:`PackedHead`): the vocabulary projection (49k x 576 for
  SmolLM2, a fifth of its weights, and tied to the input embeddings) gets its own copy in
  MKL's packed GEMM format for ``rows`` rows; a step with fewer rows is padded to ``rows``
  (rows never mix: padding costs compute, not results), more rows use the plain weight.

Only float32 weights on the CPU are touched, and nothing when MKL is missing. The result
for one row differs from the untouched model's in the last bits only (a different SGEMM
kernel); ``tests/reasoner/test_cpu_linear_tokens.py`` checks greedy tokens stay the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CpuLinearReport:
    """What :func:`prepare_cpu_linears` changed (logged at start-up)."""

    column_major: int
    """How many ``nn.Linear`` weights were laid out column-major."""
    packed_head_rows: int
    """The row count the LM head is packed for (0: the head was left as it was)."""
    extra_bytes: int
    """Memory added (the packed head's copy)."""

    def describe(self) -> str:
        head = (
            f"LM head packed for {self.packed_head_rows} rows"
            if self.packed_head_rows
            else "LM head as loaded"
        )
        return f"{self.column_major} linears column-major, {head}, +{self.extra_bytes / 2**20:.0f} MiB"


def applies(model: Any) -> bool:
    """True for a float32 model on the CPU (the only case this layout is measured for)."""
    return torch.device(model.device).type == "cpu" and model.dtype == torch.float32


def prepare_cpu_linears(model: nn.Module, *, rows: int) -> CpuLinearReport:
    """Lay out ``model``'s float32 linears for decoding ``rows`` rows at a time, in place."""
    head = _output_head(model)
    packed = 0
    extra = 0
    if head is not None and rows > 1 and packed_gemm_available():
        packed_head = PackedHead(head, rows=rows)
        _replace_output_head(model, packed_head)
        packed, extra = rows, int(packed_head.packed_weight.nbytes)
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.dtype == torch.float32 and module is not head:
            to_column_major(module)
            count += 1
    return CpuLinearReport(column_major=count, packed_head_rows=packed, extra_bytes=extra)


def to_column_major(linear: nn.Linear) -> None:
    """Store ``linear``'s weight as its contiguous transpose (same values, same parameter name)."""
    weight = linear.weight
    if weight.dim() != 2 or weight.t().is_contiguous():
        return
    with torch.no_grad():
        linear.weight = nn.Parameter(weight.detach().t().contiguous().t(), requires_grad=False)


def packed_gemm_available() -> bool:
    return bool(torch.backends.mkl.is_available()) and hasattr(torch.ops.mkl, "_mkl_linear")


class PackedHead(nn.Module):
    """An LM head whose weight is prepacked for MKL's GEMM at ``rows`` rows; fewer rows are padded."""

    def __init__(self, linear: nn.Linear, *, rows: int) -> None:
        super().__init__()
        self.rows = rows
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        # The plain weight (still tied to the input embeddings) serves batches of more rows.
        self.weight = linear.weight
        self.bias = linear.bias
        with torch.no_grad():
            self.packed_weight: torch.Tensor = torch.ops.mkl._mkl_reorder_linear_weight(
                linear.weight.detach(), rows
            )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(-1, self.in_features)
        count = flat.shape[0]
        if count > self.rows or flat.dtype != torch.float32:
            return nn.functional.linear(hidden, self.weight, self.bias)
        if count < self.rows:
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


def _replace_output_head(model: nn.Module, head: nn.Module) -> None:
    setter = getattr(model, "set_output_embeddings", None)
    if callable(setter):
        setter(head)
    else:
        model.lm_head = head
