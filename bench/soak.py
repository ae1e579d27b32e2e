"""Soak: minutes of steady mixed traffic through the whole local stack; 5xx, latency, memory.

Starts the real stack on loopback (a private Redis, vision with ocr-lite, the reasoner
with the embedded SmolLM2, the gateway: each a real process) and sends requests at a
steady rate (open loop: one every 1/rate s, whatever the answers' latency) for
``--minutes``. The mix: direct questions, cascade questions on a new image (caption-cache
miss) and on a seen one (hit), streamed answers, and a share of bad inputs (a broken data
URL, an unknown model, no messages) that must be 4xx. It prints, per minute: requests,
5xx, p50/p95 latency; then totals and each service's RSS at the end of minute 1 and of
the last minute (goals: 0 5xx, RSS growth <= 10%). Not part of `make test`.

    .venv/bin/python bench/soak.py                     # 10 minutes at 0.5 req/s
    .venv/bin/python bench/soak.py --minutes 2 --rate 1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.gateway_overhead import private_redis  # noqa: E402
from devkit.processes import ServiceProcess  # noqa: E402

ORDER_PNG = (REPO / "examples" / "order.png").read_bytes()
# kind -> share of the traffic
MIX: dict[str, float] = {
    "direct": 0.3,
    "cascade_miss": 0.15,
    "cascade_hit": 0.2,
    "stream_direct": 0.1,
    "stream_cascade": 0.1,
    "bad_input": 0.15,
}
MAX_TOKENS = 32


@dataclass
class Outcome:
    """One request as the caller saw it."""

    minute: int
    kind: str
    status: int
    latency_s: float


def image_url(raw: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def fresh_order_png(rng: random.Random) -> bytes:
    """The order page with one pixel changed: new bytes (a new cache key), same text."""
    img = Image.open(io.BytesIO(ORDER_PNG)).convert("RGB")
    img.putpixel((0, 0), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def body_for(kind: str, rng: random.Random) -> dict[str, object]:
    def ask(
        text: str, image: bytes | None, *, stream: bool = False, model: str = "auto"
    ) -> dict[str, object]:
        content: list[dict[str, object]] = [{"type": "text", "text": text}]
        if image is not None:
            content.append({"type": "image_url", "image_url": {"url": image_url(image)}})
        return {
            "model": model,
            "stream": stream,
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": content}],
        }

    if kind == "direct":
        return ask("订单号是多少?", ORDER_PNG)
    if kind == "cascade_miss":
        return ask("为什么这个订单需要付款?", fresh_order_png(rng))
    if kind == "cascade_hit":
        return ask("为什么这个订单需要付款?", ORDER_PNG)
    if kind == "stream_direct":
        return ask("订单号是多少?", ORDER_PNG, stream=True)
    if kind == "stream_cascade":
        return ask("为什么这个订单需要付款?", ORDER_PNG, stream=True)
    bad = rng.choice(["broken_data_url", "unknown_model", "no_messages"])
    if bad == "broken_data_url":
        return {
            "model": "auto",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}
                    ],
                }
            ],
        }
    if bad == "unknown_model":
        return ask("订单号是多少?", None, model="no-such-model")
    return {"model": "auto", "messages": []}


async def send(client: httpx.AsyncClient, kind: str, body: dict[str, object], minute: int) -> Outcome:
    started = time.monotonic()
    try:
        if body.get("stream"):
            async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                async for _ in resp.aiter_bytes():
                    pass
                status = resp.status_code
        else:
            status = (await client.post("/v1/chat/completions", json=body)).status_code
    except httpx.HTTPError:
        status = 0  # no answer at all: counted with the 5xx
    return Outcome(minute, kind, status, time.monotonic() - started)


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 1e6


async def soak(base_url: str, pids: dict[str, int | None], *, minutes: int, rate: float, seed: int) -> int:
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    rss: dict[int, dict[str, float]] = {}
    tasks: list[asyncio.Task[Outcome]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=180) as client:
        await send(client, "warm", body_for("cascade_hit", rng), -1)  # caches the hit image's caption
        start = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - start) < minutes * 60:
            minute = int(elapsed // 60)
            kind = rng.choices(kinds, weights)[0]
            tasks.append(asyncio.create_task(send(client, kind, body_for(kind, rng), minute)))
            sent += 1
            if minute not in rss and elapsed >= (minute + 1) * 60 - 1 / rate:
                rss[minute] = {name: rss_mb(pid) for name, pid in pids.items()}  # the minute's end
            await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
        rss.setdefault(minutes - 1, {name: rss_mb(pid) for name, pid in pids.items()})
        outcomes = list(await asyncio.gather(*tasks))
    return report(outcomes, rss, minutes=minutes)


def report(outcomes: list[Outcome], rss: dict[int, dict[str, float]], *, minutes: int) -> int:
    by_minute: dict[int, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_minute[o.minute].append(o)
    print("minute  requests  5xx  4xx   p50 s   p95 s")
    for minute in range(minutes):
        rows = by_minute.get(minute, [])
        lat = sorted(o.latency_s for o in rows if o.status == 200) or [float("nan")]
        p95 = statistics.quantiles(lat, n=20)[-1] if len(lat) >= 2 else lat[0]
        print(
            f"{minute + 1:>6}  {len(rows):>8}  {sum(o.status >= 500 or o.status == 0 for o in rows):>3}  "
            f"{sum(400 <= o.status < 500 for o in rows):>3}  {statistics.median(lat):6.2f}  {p95:6.2f}"
        )
    statuses = Counter((o.kind, o.status) for o in outcomes)
    errors = sum(o.status >= 500 or o.status == 0 for o in outcomes)
    bad_ok = all(s >= 400 and s < 500 for (k, s) in statuses if k == "bad_input")
    print(
        f"total: {len(outcomes)} requests, {errors} 5xx (or no answer); by kind and status: "
        f"{dict(sorted(statuses.items()))}"
    )
    print(f"bad inputs all 4xx: {bad_ok}")
    first, last = rss[min(rss)], rss[max(rss)]
    growth_ok = True
    for name in first:
        growth = (last[name] - first[name]) / first[name] * 100
        growth_ok &= growth <= 10
        print(
            f"RSS {name:<8} minute 1: {first[name]:7.1f} MB  minute {max(rss) + 1}: {last[name]:7.1f} MB  "
            f"growth {growth:+.1f}%"
        )
    ok = errors == 0 and bad_ok and growth_ok
    print(f"soak: {'PASS' if ok else 'FAIL'} (goals: 0 5xx, bad inputs 4xx, RSS growth <= 10%)")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.5, help="requests per second (open loop)")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    with running_stack() as (url, pids):
        print(f"stack up: gateway {url}; {args.minutes} min at {args.rate} req/s; mix {MIX}", flush=True)
        return asyncio.run(soak(url, pids, minutes=args.minutes, rate=args.rate, seed=args.seed))


@contextlib.contextmanager
def running_stack() -> Iterator[tuple[str, dict[str, int | None]]]:
    """Redis, vision, reasoner and gateway as real processes: the gateway's URL and every pid."""
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(private_redis())
        port = redis_url.rsplit(":", 1)[1].split("/")[0]
        redis_pid = next(p.pid for p in psutil.Process().children() if port in p.cmdline())
        vision = ServiceProcess(module="vision", port_env="VISION_PORT", startup_timeout=180)
        reasoner = ServiceProcess(module="reasoner", port_env="REASONER_PORT", startup_timeout=240)
        for service in (vision, reasoner):
            stack.callback(service.close)
            service.start(wait=False)
        vision.wait_ready()
        reasoner.wait_ready()
        gateway = ServiceProcess(
            module="gateway",
            port_env="GATEWAY_PORT",
            env={
                "GATEWAY_VISION_URL": vision.base_url,
                "GATEWAY_REASONER_URL": reasoner.base_url,
                "REDIS_URL": redis_url,
                "GATEWAY_REASONER_LANGUAGES": "zh,en",  # the cascade questions are Chinese
                "GATEWAY_LOG_LEVEL": "warning",
            },
        )
        stack.enter_context(gateway)
        pids = {"redis": redis_pid, "vision": vision.pid, "reasoner": reasoner.pid, "gateway": gateway.pid}
        yield gateway.base_url, pids


if __name__ == "__main__":
    sys.exit(main())
