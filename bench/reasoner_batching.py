#!/usr/bin/env python
"""Does the reasoner's batching engine pay off? 8 concurrent streams vs the same 8 one by one.

One run, one real ``python -m reasoner`` process on the embedded SmolLM2
(``REASONER_MAX_BATCH_SIZE=8``), driven over HTTP exactly as the gateway drives it:

1. warm-up request (not measured);
2. **sequential**: the 8 requests one after another;
3. **concurrent**: the same 8 requests at once.

Every request streams (SSE, ``stream_options.include_usage``), carries a stop string that
never matches (so the per-request stop machinery runs on every token), a fixed seed and the
same ``max_tokens``. Aggregate tokens/s = completion tokens (from the streamed usage) /
wall time of the phase. Time to first token (TTFT) = from sending the request to the
first content delta, reported p50/p95 under the concurrent load.

    python bench/reasoner_batching.py              # the figures in docs/performance.md
    python bench/reasoner_batching.py --quick      # smoke test: 2 short requests, seconds

Run it on a quiet machine (check ``uptime``): the model shares the CPU with everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from devkit.processes import ServiceProcess  # noqa: E402

# Open questions a small instruct model answers at length (so EOS rarely cuts a row short).
PROMPTS = [
    "Explain step by step how a company should check an invoice before paying it.",
    "Describe in detail why a web page might load slowly and how to fix each cause.",
    "Write a careful explanation of what a login error usually means and what to try.",
    "Explain how to read a sales chart that shows falling revenue, with examples.",
    "Give detailed advice for organising receipts for a small business.",
    "Explain the difference between a quote, an order and an invoice, with examples.",
    "Describe how to investigate an order that has not shipped after a week.",
    "Explain what a due date on an invoice means and what happens when it passes.",
]
NEVER_MATCHES = "<<no such stop string>>"
SEED = 1234
GOAL_RATIO = 4.0


@dataclass(frozen=True, slots=True)
class Stream:
    """One streamed request's outcome."""

    completion_tokens: int
    ttft_s: float
    total_s: float
    chunks: int


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase (sequential or concurrent) of the benchmark."""

    streams: list[Stream]
    wall_s: float

    @property
    def tokens(self) -> int:
        return sum(s.completion_tokens for s in self.streams)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


def request_body(prompt: str, *, max_tokens: int) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "seed": SEED,
        "stop": [NEVER_MATCHES],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def stream_one(client: httpx.AsyncClient, body: dict[str, Any]) -> Stream:
    started = time.perf_counter()
    first: float | None = None
    chunks = 0
    usage: dict[str, Any] | None = None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(
                f"reasoner answered {response.status_code}: {(await response.aread())[:300]!r}"
            )
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    if first is None:
                        first = time.perf_counter()
    if usage is None:
        raise RuntimeError("the stream carried no usage (stream_options.include_usage ignored?)")
    ended = time.perf_counter()
    return Stream(int(usage["completion_tokens"]), (first or ended) - started, ended - started, chunks)


async def run_sequential(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> Phase:
    started = time.perf_counter()
    streams = [await stream_one(client, body) for body in bodies]
    return Phase(streams, time.perf_counter() - started)


async def run_concurrent(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> Phase:
    started = time.perf_counter()
    streams = await asyncio.gather(*(stream_one(client, body) for body in bodies))
    return Phase(list(streams), time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (8 samples: p95 is the slowest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def describe(name: str, phase: Phase) -> str:
    return (
        f"{name}: {len(phase.streams)} requests, {phase.tokens} tokens in {phase.wall_s:.2f} s = "
        f"{phase.tokens_per_s:.1f} tok/s aggregate"
    )


async def batch_counts(client: httpx.AsyncClient) -> tuple[float, float]:
    """(batches run, requests batched) so far, from the service's /metrics."""
    text = (await client.get("/metrics")).text
    values = {}
    for line in text.splitlines():
        for name in ("flashsight_model_batch_size_count", "flashsight_model_batch_size_sum"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return values.get("flashsight_model_batch_size_count", 0.0), values.get(
        "flashsight_model_batch_size_sum", 0.0
    )


async def measure(
    base_url: str, *, requests: int, max_tokens: int
) -> tuple[Phase, Phase, tuple[float, float]]:
    bodies = [request_body(PROMPTS[i % len(PROMPTS)], max_tokens=max_tokens) for i in range(requests)]
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        await stream_one(client, request_body("Say hello.", max_tokens=4))  # warm-up, not measured
        sequential = await run_sequential(client, bodies)
        before = await batch_counts(client)
        concurrent = await run_concurrent(client, bodies)
        after = await batch_counts(client)
    return sequential, concurrent, (after[0] - before[0], after[1] - before[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 requests × 8 tokens")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument(
        "--max-wait-ms", type=float, default=None, help="REASONER_MAX_WAIT_MS (default: the service's, 10)"
    )
    args = parser.parse_args()
    requests, max_tokens = (2, 8) if args.quick else (args.requests, args.max_tokens)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    env = {
        "REASONER_MAX_BATCH_SIZE": str(args.max_batch_size),
        "REASONER_MAX_QUEUE": str(max(64, requests * 2)),
    }
    if args.max_wait_ms is not None:
        env["REASONER_MAX_WAIT_MS"] = f"{args.max_wait_ms:g}"
    print(f"reasoner: python -m reasoner (embedded SmolLM2) with {env}")
    with ServiceProcess(module="reasoner", port_env="REASONER_PORT", env=env, startup_timeout=300) as server:
        sequential, concurrent, (batches, batched) = asyncio.run(
            measure(server.base_url, requests=requests, max_tokens=max_tokens)
        )
    print(f"requests: {requests} × max_tokens {max_tokens}, streaming, stop string on, seed {SEED}")
    print(describe("sequential", sequential))
    print(describe("concurrent", concurrent))
    ratio = concurrent.tokens_per_s / sequential.tokens_per_s
    print(f"ratio: {ratio:.2f}x concurrent / sequential aggregate tokens/s (goal >= {GOAL_RATIO:g}x)")
    ttfts = [s.ttft_s * 1000 for s in concurrent.streams]
    print(
        f"ttft under concurrent load: p50 {percentile(ttfts, 50):.0f} ms, p95 {percentile(ttfts, 95):.0f} ms"
    )
    seq_ttfts = [s.ttft_s * 1000 for s in sequential.streams]
    print(f"ttft one at a time: p50 {statistics.median(seq_ttfts):.0f} ms")
    print(
        f"batches started for the concurrent phase: {batches:.0f} with {batched:.0f} requests; "
        f"{requests - batched:.0f} joined a running batch"
    )
    chunks = sum(s.chunks for s in concurrent.streams)
    print(f"streamed content chunks (concurrent): {chunks} for {concurrent.tokens} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
