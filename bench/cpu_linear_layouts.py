#!/usr/bin/env python
"""How fast each float32 linear layout streams a model's weights on this CPU, side by side in one run.

The reasoner's CPU decode step is bound by reading the weights (``modelserver/cpu_linear.py``).
This times every projection of a decoder stack (SmolLM2-135M's shapes by default: 30 layers
of q, k, v, o, gate, up, down, 405 MiB, plus its 49k-row LM head, 108 MiB), the weights cold (the stack
is far bigger than the caches), at 1 and 8 rows (decode) and at a prefill's 368 rows, for:

* ``row-major``: ``nn.Linear`` as loaded (``F.linear`` on the ``(out, in)`` weight),
* ``mkl-packed``: MKL's GEMM on a weight packed for 8 rows (inputs of 2-7 rows padded to 8),
  the reasoner's layout before oneDNN,
* ``onednn-packed``: oneDNN's inner product on a weight reordered once
  (``torch.ops.mkldnn._reorder_linear_weight``), the reasoner's layout now.

Printed: ms per pass over the stack (best of ``--repeat``), GB/s of weights read, and each
layout's speed relative to row-major; then a plain ``sum`` over 400 MB as the machine's
streaming rate. Results depend on the CPU: run it where you deploy, and set
``REASONER_CPU_LINEAR=false`` if oneDNN's row is not the fastest there.

    python bench/cpu_linear_layouts.py                # ~1 minute
    python bench/cpu_linear_layouts.py --threads 1
    python bench/cpu_linear_layouts.py --quick        # tiny shapes, seconds (tests/bench smoke test)
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

Linear = Callable[[torch.Tensor], torch.Tensor]

# (out, in) of one SmolLM2-135M layer: q, k, v, o, gate, up, down
SMOLLM2_LAYER = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]
SMOLLM2_HEAD = (49152, 576)


def row_major(weight: torch.Tensor) -> Linear:
    return lambda x: F.linear(x, weight)


def mkl_packed(weight: torch.Tensor, rows: int = 8) -> Linear:
    packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, rows)

    def forward(x: torch.Tensor) -> torch.Tensor:
        count = x.shape[0]
        if count == 1 or count > rows:  # MKL's packed GEMM serves exactly ``rows`` rows
            return F.linear(x, weight)
        padded = x.new_zeros((rows, x.shape[1]))
        padded[:count] = x
        return torch.ops.mkl._mkl_linear(padded, packed, weight, None, rows)[:count]

    return forward


def onednn_packed(weight: torch.Tensor, rows: int = 8) -> Linear:
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)
    return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


LAYOUTS: dict[str, Callable[[torch.Tensor], Linear]] = {
    "row-major": row_major,
    "mkl-packed": mkl_packed,
    "onednn-packed": onednn_packed,
}


def available(name: str) -> bool:
    if name == "mkl-packed":
        return bool(torch.backends.mkl.is_available()) and hasattr(torch.ops.mkl, "_mkl_linear")
    if name == "onednn-packed":
        return bool(torch.backends.mkldnn.is_available())
    return True


def time_pass(linears: list[tuple[Linear, int]], inputs: dict[int, torch.Tensor], repeat: int) -> float:
    """Best wall time of one pass over every ``(linear, input width)``."""
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeat + 1):  # the first pass warms up (allocations, kernels)
            started = time.perf_counter()
            for linear, width in linears:
                linear(inputs[width])
            best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 8, 368])
    parser.add_argument("--quick", action="store_true", help="tiny shapes and 2 layers (smoke test)")
    args = parser.parse_args(argv)
    layer, head = SMOLLM2_LAYER, SMOLLM2_HEAD
    if args.quick:
        layer, head = [(64, 32), (16, 32), (96, 32), (32, 96)], (500, 32)
        args.layers, args.repeat, args.rows = 2, 1, [1, 8, 20]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shapes = layer * args.layers
    weights = [torch.randn(shape) * 0.02 for shape in shapes]
    head_weight = torch.randn(head) * 0.02
    stack_bytes = sum(w.nbytes for w in weights)
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{args.layers} layers, {stack_bytes / 2**20:.0f} MiB of projections, "
        f"head {head[0]}x{head[1]} ({head_weight.nbytes / 2**20:.0f} MiB)"
    )
    names = [name for name in LAYOUTS if available(name)]
    print("| rows | part | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for rows in args.rows:
        inputs = {width: torch.randn(rows, width) for width in {s[1] for s in shapes} | {head[1]}}
        for part, part_weights in (("projections", weights), ("LM head", [head_weight])):
            part_bytes = sum(w.nbytes for w in part_weights)
            times = {}
            for name in names:
                linears = [(LAYOUTS[name](w), w.shape[1]) for w in part_weights]
                times[name] = time_pass(linears, inputs, args.repeat)
                del linears  # one layout's packed copies in memory at a time
            base = times["row-major"]
            cells = [
                f"{t * 1000:.2f} ms, {part_bytes / t / 1e9:.1f} GB/s ({base / t:.2f}x)"
                for t in times.values()
            ]
            print(f"| {rows} | {part} | " + " | ".join(cells) + " |")
    stream = torch.randn(100_000_000 if not args.quick else 1_000_000)
    stream.sum()
    started = time.perf_counter()
    stream.sum()
    rate = stream.nbytes / (time.perf_counter() - started) / 1e9
    print(f"streaming rate (sum over {stream.nbytes / 1e6:.0f} MB): {rate:.1f} GB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
