"""The GPU decode fast path: a static KV cache sized by settings, its step captured in CUDA graphs.

An eager decode step launches a few hundred small kernels from Python; for a 9 B model at
batch 1 that takes ~66 ms on an H100 where reading the weights takes ~6 ms. A CUDA graph
records the launches once and replays them with one call. It needs fixed shapes and fixed
buffers, which :class:`~modelserver.static_kv.StaticKV` provides; one graph is captured
per (batch bucket, attention-window bucket), as serving engines do: 1, 2, 4, 8, ... rows
× 256, 512, ... columns. A step with 3 live rows replays the 4-row graph (the spare slot
computes a row nobody reads).

:func:`prepare_static_kv` is the one hook a backend calls after loading its model. It
never fails the service: a cache that does not fit the budget, or a capture that fails,
is logged and the backend decodes as before (eager, dynamic cache) — or eagerly in the
static cache when only the capture failed.

Settings (``<PREFIX>_`` env vars, :class:`~modelserver.config.ModelServerSettings`):
``static_kv`` (auto: on CUDA only), ``cuda_graphs``, ``kv_cache_gib`` (the budget:
slots × row length × bytes per token), ``kv_cache_max_len`` (tokens per row, prompt
plus answer; lowered to fit the budget and the model's context).
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import torch

from modelserver.fused_step import choose_step
from modelserver.static_kv import KVShape, StaticKV, bucket_for, plan_max_len

log = logging.getLogger(__name__)

MIN_ROW_LENGTH = 64
"""A static cache whose rows would be shorter than this is not worth it: decode as before."""


class GraphRunner:
    """Replays the captured step of the smallest bucket that holds the live rows."""

    def __init__(self, kv: StaticKV) -> None:
        self.kv = kv
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}

    def capture(self) -> float:
        """Capture every (batch, window) bucket, biggest first (smaller ones reuse its memory)."""
        kv = self.kv
        started = time.perf_counter()
        shapes = sorted(itertools.product(kv.batch_buckets, kv.length_buckets), reverse=True)
        kv.mask.fill_(kv.blocked)
        kv.mask[:, :, :, 0] = 0.0  # any valid column: warm-up rows compute finite numbers
        kv.column.fill_(0)
        with torch.inference_mode():
            side = torch.cuda.Stream(device=kv.device)
            side.wait_stream(torch.cuda.current_stream(kv.device))
            with torch.cuda.stream(side):
                for rows, width in shapes:  # warm-up: cuBLAS handles, autotuning, lazy init
                    kv.eager_step(rows, width)
            torch.cuda.current_stream(kv.device).wait_stream(side)
            for rows, width in shapes:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=self.pool):
                    out = kv.eager_step(rows, width)
                self.graphs[(rows, width)] = (graph, out)
            torch.cuda.synchronize(kv.device)
        kv.mask.fill_(kv.blocked)
        return time.perf_counter() - started

    def __call__(self, rows: int, width: int) -> torch.Tensor:
        graph, out = self.graphs[(bucket_for(rows, self.kv.batch_buckets), width)]
        graph.replay()
        return out[:rows]


def wants_static_kv(mode: str, device: torch.device) -> bool:
    """``auto``: on CUDA only (the CPU keeps the dynamic path); ``on`` / ``off`` force it."""
    return mode == "on" or (mode == "auto" and device.type == "cuda")


def prepare_static_kv(model: Any, settings: Any, *, context: int | None) -> StaticKV | None:
    """The static cache (graphs captured on CUDA) for ``model``, or None to decode as before.

    ``settings`` is a :class:`~modelserver.config.ModelServerSettings`: its
    ``max_batch_size`` is the slot count, so the engine never admits more rows than fit.
    """
    device = torch.device(model.device)
    if not wants_static_kv(settings.static_kv, device):
        return None
    dtype = model.dtype
    slots = settings.max_batch_size
    try:
        shape = KVShape.of(model)
    except (AttributeError, TypeError) as exc:
        log.warning("static KV cache off: cannot read the model's KV shape (%s)", exc)
        return None
    budget = int(settings.kv_cache_gib * 2**30)
    max_len = plan_max_len(
        shape, dtype, slots=slots, wanted_len=settings.kv_cache_max_len, budget_bytes=budget, context=context
    )
    if max_len < MIN_ROW_LENGTH:
        log.warning(
            "static KV cache off: %d slots (max_batch_size) in kv_cache_gib=%s leave %d tokens per row "
            "(minimum %d); decoding with a dynamic cache. Raise kv_cache_gib or lower max_batch_size",
            slots,
            settings.kv_cache_gib,
            max_len,
            MIN_ROW_LENGTH,
        )
        return None
    try:
        kv = StaticKV(model, slots=slots, max_len=max_len, device=device, dtype=dtype)
    except torch.OutOfMemoryError as exc:
        log.warning(
            "static KV cache off: allocating it ran out of memory (%s); decoding with a dynamic cache", exc
        )
        return None
    kv.step_name, step = choose_step(kv, settings.decode_step)
    if step is not None:
        kv.compute = step
    log.info("static KV cache: %s on %s", kv.describe(), device)
    if device.type == "cuda" and settings.cuda_graphs:
        runner = GraphRunner(kv)
        try:
            seconds = runner.capture()
        except Exception:  # a model or kernel that cannot be captured: serve eagerly, never fail
            log.exception("CUDA graph capture failed: decoding eagerly in the static KV cache")
            del runner
            torch.cuda.synchronize(device)
            kv.mask.fill_(kv.blocked)
        else:
            kv.runner = runner
            log.info(
                "CUDA graphs: %d captured (batch %s × window %s) in %.1f s",
                len(runner.graphs),
                kv.batch_buckets,
                kv.length_buckets,
                seconds,
            )
    return kv
