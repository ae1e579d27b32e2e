#!/usr/bin/env python
"""The reasoner on a GPU at the GLM-4-9B chat shape: tokens/s and TTFT at 1/8/32 streams vs the hardware.

One command, no download, no checkpoint on disk:

1. **Shape**: a folder with only a ``config.json`` of ``zai-org/glm-4-9b-chat-hf``'s shape
   (9.4 B parameters, GQA with 2 KV heads, 151,552-entry vocabulary) and a tiny GLM tokenizer
   (``scripts/build_tiny_models.py``'s). The service's weights are random and made directly
   on the device. The ``lm_head`` rows of every id the tiny tokenizer cannot print (the
   ids above its ~400 entries, special tokens, partial UTF-8 bytes) are zeroed, so greedy
   output is always printable text and never hits EOS: every request runs to ``max_tokens``
   and streams from its first token, while a step still reads every weight.
2. **Bandwidth limit**: a device-to-device copy measures the memory bandwidth (bytes read +
   written); a batch-1 decode step must read every weight once (all but the input
   embedding), so ``bandwidth / weight bytes`` is the most tokens/s one stream can get.
3. **The real service**: ``python -m reasoner``'s app (this file's ``serve`` subcommand:
   the same ``create_app`` and settings, only ``load_model`` swapped for the random
   build) in its own process; streamed requests (SSE, usage included), temperature 0, a
   stop string that never matches, closed loop at each concurrency: tokens/s over all
   requests and TTFT p50/p95.
4. **Baseline**: plain ``model.generate`` (eager, dynamic cache) at batch 1 and 8 on the
   same random model, in another process after the service has stopped.

    python bench/engine_gpu.py                      # CUDA: the table in docs/performance.md
    python bench/engine_gpu.py --json out.json      # the same, plus every figure as JSON
    python bench/engine_gpu.py --quick              # CPU smoke test: a tiny shape, seconds

The service's settings come from the environment as usual (``REASONER_STATIC_KV``,
``REASONER_CUDA_GRAPHS``, ``REASONER_KV_CACHE_GIB``...); this script sets
``REASONER_MAX_BATCH_SIZE`` to the largest concurrency unless given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
NEVER_MATCHES = "<<no such stop string>>"
PROMPTS = [
    "Explain step by step how a company should check an invoice before paying it.",
    "Why might a web page load slowly, and how do you fix each cause?",
    "What does a login error usually mean and what should a user try?",
    "How do you read a sales chart that shows falling revenue?",
    "Give advice for organising receipts for a small business.",
    "What is the difference between a quote, an order and an invoice?",
    "How do you investigate an order that has not shipped after a week?",
    "What happens when the due date on an invoice passes?",
]

# zai-org/glm-4-9b-chat-hf's config (the architecture the reasoner serves in production).
GLM4_9B = {
    "hidden_size": 4096,
    "intermediate_size": 13696,
    "num_hidden_layers": 40,
    "num_attention_heads": 32,
    "num_key_value_heads": 2,
    "head_dim": 128,
    "vocab_size": 151552,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1.5625e-07,
}
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 2048,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
}
SHAPES = {"glm4-9b": GLM4_9B, "tiny": TINY}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the checkpoint folder (config + tokenizer, no weights) -----------------------------------


def _tiny_builder() -> Any:
    spec = importlib.util.spec_from_file_location(
        "build_tiny_models", REPO_ROOT / "scripts" / "build_tiny_models.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_shape(folder: Path, shape: str) -> None:
    """``config.json`` of ``shape`` and the tiny GLM tokenizer with its chat template."""
    from transformers import Glm4Config

    builder = _tiny_builder()
    tokenizer = builder.build_tokenizer(builder.GLM4_CHAT_TEMPLATE)
    eos = builder._token_ids(tokenizer, *builder.EOS_TOKENS)
    pad = builder._token_ids(tokenizer, "<|endoftext|>")[0]
    config = Glm4Config(
        **SHAPES[shape],
        initializer_range=0.02,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
        pad_token_id=pad,
        eos_token_id=eos,
        attention_bias=True,
        tie_word_embeddings=False,
    )
    config.architectures = ["Glm4ForCausalLM"]
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def build_random_model(folder: str | Path, *, device: Any, dtype: Any) -> Any:
    """The shape in ``folder`` with random weights made on ``device``; unprintable ids can never win."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval()
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    printable = [
        i
        for i in range(len(tokenizer))
        if i not in special and (text := tokenizer.decode([i])).strip() and "\ufffd" not in text
    ]
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        keep = head[printable].clone()
        head.zero_()  # logit 0 for every other id; the printable rows' random logits beat it
        head[printable] = keep
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, do_sample=False
    )
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return model


# -- subcommand: serve (the real reasoner app on the random model) ----------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import reasoner.backends.loading as loading
    from modelserver.serve import run
    from reasoner.config import ReasonerSettings
    from reasoner.main import create_app

    def load_model(source: str, *, device: Any, dtype: Any) -> Any:
        return build_random_model(source, device=device, dtype=dtype)

    loading.load_model = load_model  # the only change: weights made on the device, not read
    settings = ReasonerSettings()
    run(create_app(settings), settings)
    return 0


# -- subcommand: baseline (bandwidth, plain generate) -----------------------------------------


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_bandwidth(device: str) -> dict[str, Any]:
    import torch

    size = (2 << 30) if device.startswith("cuda") else (64 << 20)
    src = torch.ones(size, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    iters = 20 if device.startswith("cuda") else 3
    started = time.perf_counter()
    for _ in range(iters):
        dst.copy_(src)
    _sync(device)
    seconds = time.perf_counter() - started
    return {"buffer_bytes": size, "GBps": round(2 * size * iters / seconds / 1e9, 1)}


def cmd_baseline(args: argparse.Namespace) -> int:
    import torch

    result: dict[str, Any] = {"bandwidth": measure_bandwidth(args.device)}
    dtype = getattr(torch, args.dtype)
    from transformers import AutoTokenizer

    model = build_random_model(args.model, device=args.device, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    result["weight_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    result["parameters"] = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight
    result["input_embedding_bytes"] = embed.numel() * embed.element_size()
    prompts = [
        list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, return_dict=True
            )["input_ids"]
        )
        for p in PROMPTS
    ]
    pad = tokenizer.pad_token_id

    def generate(batch: int, new: int) -> dict[str, Any]:
        rows = [prompts[i % len(prompts)] for i in range(batch)]
        width = max(len(r) for r in rows)
        ids = torch.full((batch, width), pad, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        ids, mask = ids.to(args.device), mask.to(args.device)
        _sync(args.device)
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=False,
                pad_token_id=pad,
            )
        _sync(args.device)
        seconds = time.perf_counter() - started
        made = int(out.shape[1] - width)
        return {
            "batch": batch,
            "tokens": batch * made,
            "seconds": round(seconds, 3),
            "tok_s": round(batch * made / seconds, 2),
        }

    generate(1, 4)
    generate(8, 4)
    for batch in (1, 8):
        result[f"generate_b{batch}"] = generate(batch, args.max_tokens)
        Path(args.json).write_text(json.dumps(result))
    Path(args.json).write_text(json.dumps(result))
    return 0


# -- subcommand: profile (the decode loop in-process, without HTTP) ---------------------------


def cmd_profile(args: argparse.Namespace) -> int:
    """Each decode step side by side: a graph replay alone and the decode loop, at batch 1 and the largest.

    One model, built once; for each ``decode_step`` setting (``--steps``) the static cache
    is prepared (graphs captured on CUDA) as the service would, timed, and released.
    """
    import cProfile
    import gc
    import io
    import pstats

    import torch
    from modelserver.backend import DiscardSink, SamplingParams
    from modelserver.cuda_graphs import prepare_static_kv
    from modelserver.decoding import decode_batch
    from reasoner.config import ReasonerSettings
    from transformers import AutoTokenizer

    device = torch.device(args.device)
    model = build_random_model(args.model, device=device, dtype=getattr(torch, args.dtype))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    prompt = tokenizer.encode(PROMPTS[0], add_special_tokens=False)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0)
    result: dict[str, Any] = {}

    def decode(rows: int, static: Any) -> float:
        _sync(args.device)
        begin = time.perf_counter()
        decode_batch(
            model, tokenizer, [prompt] * rows, [params] * rows, DiscardSink(), eos_ids=set(), static_kv=static
        )
        _sync(args.device)
        return rows * args.max_tokens / (time.perf_counter() - begin)

    for mode in args.steps.split(","):
        settings = ReasonerSettings(model=args.model, decode_step=mode)
        figures: dict[str, Any] = result.setdefault(mode, {})
        started = time.perf_counter()
        kv = prepare_static_kv(model, settings, context=model.config.max_position_embeddings)
        figures["prepare_s"] = round(time.perf_counter() - started, 2)
        figures["step"] = kv.step_name if kv is not None else "dynamic cache"
        figures["graphs"] = bool(kv is not None and kv.runner is not None)
        sizes = sorted({1, settings.max_batch_size})
        if kv is not None and kv.runner is not None:
            for rows in sizes:
                kv.runner(rows, kv.length_buckets[0])
                _sync(args.device)
                begin = time.perf_counter()
                for _ in range(20):
                    kv.runner(rows, kv.length_buckets[0])
                _sync(args.device)
                figures[f"replay_ms_b{rows}"] = round((time.perf_counter() - begin) / 20 * 1000, 2)
        for rows in sizes:
            decode(rows, kv)
            figures[f"decode_loop_tok_s_b{rows}"] = round(decode(rows, kv), 1)
        if mode == args.steps.split(",")[-1]:
            profiler = cProfile.Profile()
            profiler.enable()
            decode(1, kv)
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
            result["cprofile_b1_tottime"] = text.getvalue()[-5000:]
        log(f"profile {mode}: {figures}")
        Path(args.json).write_text(json.dumps(result))
        del kv
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    Path(args.json).write_text(json.dumps(result))
    return 0


# -- the load --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body(index: int, max_tokens: int) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [{"role": "user", "content": PROMPTS[index % len(PROMPTS)]}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stop": [NEVER_MATCHES],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def stream_one(client: Any, payload: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    first = None
    usage = None
    async with client.stream("POST", "/v1/chat/completions", json=payload) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if chunk.get("usage"):
                usage = chunk["usage"]
            if first is None and any(
                (c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()
            ):
                first = time.perf_counter()
    ended = time.perf_counter()
    if usage is None:
        raise RuntimeError("the stream carried no usage")
    return {"tokens": int(usage["completion_tokens"]), "ttft_s": (first or ended) - started}


async def load_phase(base_url: str, *, concurrency: int, requests: int, max_tokens: int) -> dict[str, Any]:
    """``concurrency`` workers send ``requests`` streamed requests in all (closed loop)."""
    import httpx

    pending = list(range(requests))
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            while pending:
                results.append(await stream_one(client, body(pending.pop(0), max_tokens)))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    tokens = sum(r["tokens"] for r in results)
    ttfts = sorted(r["ttft_s"] * 1000 for r in results)
    return {
        "concurrency": concurrency,
        "requests": requests,
        "tokens": tokens,
        "wall_s": round(wall, 2),
        "tok_s": round(tokens / wall, 1),
        "ttft_p50_ms": round(statistics.median(ttfts), 1),
        "ttft_p95_ms": round(ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))], 1),
    }


class Service:
    """``serve`` in its own process group, stopped (by its pid) on exit."""

    def __init__(self, folder: Path, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        full_env = {
            **os.environ,
            **env,
            "REASONER_MODEL": str(folder),
            "REASONER_PORT": str(self.port),
            "REASONER_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }
        with log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "serve"],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the reasoner exited ({self.process.returncode}):\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"the reasoner was not ready in {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


# -- the report --------------------------------------------------------------------------------


def _by_batch(figures: dict[str, Any], prefix: str) -> list[float]:
    """The values of ``<prefix><batch>`` keys, smallest batch first."""
    keys = sorted((k for k in figures if k.startswith(prefix)), key=lambda k: int(k.removeprefix(prefix)))
    return [float(figures[k]) for k in keys]


def render(report: dict[str, Any]) -> str:
    lines = [
        f"device: {report.get('device_name')}; shape {report['shape']} "
        f"({report.get('parameters', 0) / 1e9:.2f} B parameters, {report['dtype']}); "
        f"{report['max_tokens']} new tokens per request, temperature 0, stop string never matches"
    ]
    lines.append(
        f"service settings: {report.get('service_env')}; GPU memory used: {report.get('gpu_memory_used')}"
    )
    static = report.get("static_kv_log")
    if static:
        lines.append("service log: " + " | ".join(static))
    lines.append("| load | tokens/s (all requests) | TTFT p50 / p95 |")
    lines.append("|---|---:|---:|")
    for phase in report.get("phases", []):
        name = "1 stream" if phase["concurrency"] == 1 else f"{phase['concurrency']} concurrent"
        lines.append(
            f"| {name} ({phase['requests']} requests) | {phase['tok_s']:.1f} | "
            f"{phase['ttft_p50_ms']:.0f} / {phase['ttft_p95_ms']:.0f} ms |"
        )
    base = report.get("baseline") or {}
    b1, b8 = (base.get("generate_b1") or {}).get("tok_s"), (base.get("generate_b8") or {}).get("tok_s")
    if b1 is not None:
        batch8 = "-" if b8 is None else f"{b8:.1f}"
        lines.append(f"| plain `model.generate`, batch 1 / batch 8 | {b1:.1f} / {batch8} | |")
    limit = report.get("limit")
    if limit:
        lines.append(
            f"| memory-bandwidth limit at batch 1 ({limit['bytes_per_step'] / 1e9:.3g} GB per token "
            f"at a measured {limit['GBps'] / 1000:.3g} TB/s) | **{limit['tok_s']:.0f}** | |"
        )
    profile = {k: v for k, v in (report.get("profile") or {}).items() if isinstance(v, dict)}
    if profile:
        lines.append("")
        lines.append("in-process decode loop (no HTTP), per decode step (`decode_step`):")
        lines.append(
            "| decode step | graphs | start-up | replay b1 / b-max | loop tok/s b1 | loop tok/s b-max |"
        )
        lines.append("|---|---|---:|---:|---:|---:|")
        for mode, f in profile.items():
            loops = _by_batch(f, "decode_loop_tok_s_b")
            replays = _by_batch(f, "replay_ms_b")
            replay = " / ".join(f"{v:.2f}" for v in replays) + " ms" if replays else "-"
            first, last = (loops[0], loops[-1]) if loops else (0.0, 0.0)
            graphs = "yes" if f.get("graphs") else "no"
            lines.append(
                f"| {mode} ({f.get('step')}) | {graphs} | {f.get('prepare_s', 0):.1f} s "
                f"| {replay} | {first:.1f} | {last:.1f} |"
            )
    phases = {p["concurrency"]: p for p in report.get("phases", [])}
    if limit and 1 in phases:
        lines.append(f"1 stream = {phases[1]['tok_s'] / limit['tok_s']:.0%} of the batch-1 limit")
    if b1 and 1 in phases:
        lines.append(f"service 1 stream / plain generate batch 1: {phases[1]['tok_s'] / b1:.2f}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[1])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve")
    serve.set_defaults(func=cmd_serve)
    baseline = sub.add_parser("baseline")
    baseline.add_argument("--model", required=True)
    baseline.add_argument("--device", required=True)
    baseline.add_argument("--dtype", required=True)
    baseline.add_argument("--max-tokens", type=int, required=True)
    baseline.add_argument("--json", required=True)
    baseline.set_defaults(func=cmd_baseline)
    profile = sub.add_parser("profile")
    profile.add_argument("--model", required=True)
    profile.add_argument("--device", required=True)
    profile.add_argument("--dtype", required=True)
    profile.add_argument("--max-tokens", type=int, required=True)
    profile.add_argument("--json", required=True)
    profile.add_argument("--steps", required=True)
    profile.set_defaults(func=cmd_profile)
    parser.add_argument(
        "--profile", action="store_true", help="also time the decode loop in-process (no HTTP)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="CPU smoke test: tiny shape, 8 tokens, 1 and 2 streams"
    )
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --quick)")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None)
    parser.add_argument("--concurrency", default=None, help="default: 1,8,32 (1,2 with --quick)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="requests per worker (default 2; 3 at 1 stream)"
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="default: 128 (8 with --quick)")
    parser.add_argument("--no-baseline", action="store_true", help="skip plain generate and the bandwidth")
    parser.add_argument("--json", default=None, help="write every figure here (also after each phase)")
    parser.add_argument("--service-env", action="append", default=[], help="NAME=VALUE for the reasoner")
    parser.add_argument(
        "--steps",
        default=None,
        help="decode steps --profile compares (default transformers,fused,compiled; on CPU without compiled)",
    )
    args = parser.parse_args()
    if args.command:
        return int(args.func(args))

    device = args.device or ("cpu" if args.quick else "cuda")
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    shape = args.shape or ("tiny" if args.quick else "glm4-9b")
    levels = [int(c) for c in (args.concurrency or ("1,2" if args.quick else "1,8,32")).split(",")]
    max_tokens = args.max_tokens or (8 if args.quick else 128)
    rounds = args.rounds or (1 if args.quick else 2)
    env = {
        "REASONER_DEVICE": device,
        "REASONER_DTYPE": dtype,
        "REASONER_MAX_BATCH_SIZE": str(max(levels)),
        "REASONER_MAX_QUEUE": str(max(64, 4 * max(levels))),
        "REASONER_LOG_LEVEL": "info",
    }
    if args.quick:  # the static cache runs eagerly on the CPU: the smoke test drives that path too,
        env["REASONER_STATIC_KV"] = "on"  # with the GPU's written-out step (the CPU's packed linears
        env["REASONER_CPU_LINEAR"] = "false"  # would keep transformers' step: modelserver.fused_step)
    env.update(dict(item.split("=", 1) for item in args.service_env))
    report: dict[str, Any] = {
        "shape": shape,
        "dtype": dtype,
        "device": device,
        "max_tokens": max_tokens,
        "service_env": env,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        "phases": [],
    }
    json_path = Path(args.json) if args.json else None

    def save() -> None:
        if json_path is not None:
            json_path.write_text(json.dumps(report, indent=2))

    print(f"machine: {report['machine']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="engine-gpu-") as tmp:
        folder = Path(tmp) / shape
        write_shape(folder, shape)
        if args.profile:
            out = Path(tmp) / "profile.json"
            steps = args.steps or (
                "transformers,fused,compiled" if device.startswith("cuda") else "transformers,fused"
            )
            run = _run_step("profile", folder, out, device=device, dtype=dtype, max_tokens=max_tokens,
                            timeout_s=900, env={**os.environ, **env}, extra=["--steps", steps])
            report["profile"] = (
                json.loads(out.read_text()) if out.is_file() else {"error": run.stderr[-3000:]}
            )
            if run.returncode != 0:
                report["profile"]["error"] = run.stderr[-3000:]
            log(f"profile: { {k: v for k, v in report['profile'].items() if not k.startswith('cprofile')} }")
            save()
        service = Service(folder, env, Path(tmp) / "reasoner.log")
        try:
            started = time.monotonic()
            service.wait_ready(900)
            report["service_ready_s"] = round(time.monotonic() - started, 1)
            log(f"reasoner ready in {report['service_ready_s']} s")
            asyncio.run(
                load_phase(service.base_url, concurrency=1, requests=1, max_tokens=max_tokens)
            )  # warm
            for level in levels:
                requests = level * (rounds + 1 if level == 1 else rounds)
                phase = asyncio.run(
                    load_phase(service.base_url, concurrency=level, requests=requests, max_tokens=max_tokens)
                )
                report["phases"].append(phase)
                log(f"phase {phase}")
                save()
            report["gpu_memory_used"] = _gpu_memory_used()
        finally:
            service.stop()
            report["static_kv_log"] = [
                line.split("] ", 1)[-1][:300]
                for line in service.tail(400).splitlines()
                if any(key in line for key in ("static KV", "CUDA graph", "decode step", "Traceback"))
            ]
            report["service_log_tail"] = service.tail(60)
            save()
        if not args.no_baseline:
            out = Path(tmp) / "baseline.json"
            run = _run_step("baseline", folder, out, device=device, dtype=dtype, max_tokens=max_tokens,
                            timeout_s=900)
            if out.is_file():
                report["baseline"] = base = json.loads(out.read_text())
                report["parameters"] = base.get("parameters", 0)
                per_step = base["weight_bytes"] - base["input_embedding_bytes"]
                gbps = base["bandwidth"]["GBps"]
                report["limit"] = {"bytes_per_step": per_step, "GBps": gbps, "tok_s": gbps * 1e9 / per_step}
            if run.returncode != 0:
                report["baseline_error"] = run.stderr[-3000:]
                log(f"baseline failed ({run.returncode}): {run.stderr[-2000:]}")
    report["device_name"] = _device_name(device)
    save()
    print(render(report), flush=True)
    return 0


def _run_step(
    step: str, folder: Path, out: Path, *, device: str, dtype: str, max_tokens: int, timeout_s: float,
    env: dict[str, str] | None = None, extra: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """This script's ``step`` sub-command (profile, baseline) in a process of its own, writing ``out``."""
    return subprocess.run(
        [
            sys.executable, str(Path(__file__).resolve()), step,
            "--model", str(folder), "--device", device, "--dtype", dtype,
            "--max-tokens", str(max_tokens), "--json", str(out), *(extra or []),
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=env,
    )


def _gpu_memory_used() -> str | None:
    """What ``nvidia-smi`` says the GPU holds (the service's weights, KV cache, graphs), if there is one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(torch.device(device)))
    return f"CPU ({platform.processor() or platform.machine()})"


if __name__ == "__main__":
    raise SystemExit(main())
