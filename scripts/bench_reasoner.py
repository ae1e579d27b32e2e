#!/usr/bin/env python
"""Measure the reasoner's embedded model: load time (GGUF vs cache) and decode throughput.

Throughput goes through ``modelserver.decoding.decode_batch`` with a streaming sink (text
delivered per token, as the engine does), EOS disabled so every row makes ``--tokens``.

    python scripts/bench_reasoner.py [--batches 1 8] [--tokens 64] [--dtype float32] [--gguf]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import cast

import torch
from modelserver.backend import DiscardSink, SamplingParams
from modelserver.decoding import RowResult, decode_batch
from reasoner.config import ReasonerSettings
from reasoner.embedded import lookup, prepare
from transformers import AutoModelForCausalLM, AutoTokenizer

QUESTIONS = [
    "Why do invoices need a due date?",
    "Explain what a login error usually means.",
    "What should I check when a chart shows falling sales?",
    "Give advice for a slow website.",
]


class StreamingSink(DiscardSink):
    """Counts the pieces of text delivered, as the engine would stream them."""

    def __init__(self) -> None:
        self.pieces = 0

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        self.pieces += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--gguf", action="store_true", help="also time a conversion from the GGUF")
    args = parser.parse_args()
    spec = lookup("smollm2")
    if args.gguf:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            prepare(spec, Path(scratch))
            print(f"load from GGUF (read + dequantize + write cache): {time.perf_counter() - started:.1f} s")
    path = prepare(spec, ReasonerSettings().cache_dir)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).eval()
    print(f"load from cache ({args.dtype}): {time.perf_counter() - started:.1f} s")
    params = SamplingParams(max_tokens=args.tokens, temperature=0.7, seed=0)
    prompt_of = [
        cast(
            "list[int]",
            tokenizer.apply_chat_template(
                [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True, return_dict=False
            ),
        )
        for q in QUESTIONS
    ]
    decode_batch(model, tokenizer, prompt_of[:1], [params], StreamingSink(), eos_ids=set())  # warm-up
    for size in args.batches:
        prompts = [prompt_of[i % len(prompt_of)] for i in range(size)]
        sink = StreamingSink()
        started = time.perf_counter()
        generated = 0

        def count(_index: int, result: RowResult) -> None:
            nonlocal generated
            generated += result.completion_tokens

        decode_batch(model, tokenizer, prompts, [params] * size, sink, eos_ids=set(), on_result=count)
        elapsed = time.perf_counter() - started
        print(
            f"batch {size}: {generated} tokens in {elapsed:.2f} s = "
            f"{generated / elapsed:.1f} tok/s aggregate, "
            f"{generated / elapsed / size:.1f} tok/s per stream ({sink.pieces} streamed pieces)"
        )


if __name__ == "__main__":
    main()
