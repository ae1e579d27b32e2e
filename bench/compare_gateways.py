"""Before/after: several gateway variants against the same stubs, loaded in interleaved rounds.

A variant is a checkout (whose ``services/gateway`` and ``services/common`` are run) and
optional environment, e.g. an old commit exported with ``git archive`` against the working
tree, or one checkout with ``GATEWAY_WORKERS=1`` against ``=2``. Each round loads the stub
directly and every variant once at each concurrency, in rotating order, so machine noise
spreads over all of them; the medians over rounds are printed. Used to justify each
performance change by a measured before/after (see docs/performance.md)::

    git archive HEAD services/gateway services/common | tar -x -C /tmp/before
    .venv/bin/python bench/compare_gateways.py --variant before=/tmp/before --variant after=. \\
        --scenario text --concurrency 1,32 --rounds 4
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.gateway_overhead import chat_body, gateway, private_redis, small_png, stub  # noqa: E402
from bench.loadgen import LoadResult, pick_load, print_comparison  # noqa: E402


def parse_variant(spec: str) -> tuple[str, Path, dict[str, str]]:
    """``name=checkout[:NAME=VALUE...]`` → (name, checkout, env)."""
    name, _, rest = spec.partition("=")
    checkout, *env = rest.split(":")
    return name, Path(checkout or ".").resolve(), dict(item.split("=", 1) for item in env)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=CHECKOUT[:ENV=VALUE...]")
    parser.add_argument("--scenario", choices=("text", "image"), default="text")
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--loadgen", choices=("auto", "wrk", "aiohttp"), default="auto")
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    image = small_png() if args.scenario == "image" else None
    question = "订单号是多少?"
    bodies = {"direct": chat_body(question, model="ocr-lite", image=image)}
    bodies |= {name: chat_body(question, model="direct", image=image) for name, _, _ in variants}
    results: dict[tuple[str, int], list[LoadResult]] = {(t, c): [] for t in bodies for c in concurrencies}
    load = pick_load(args.loadgen)
    print(f"load generator: {load.name}; scenario {args.scenario}; variants: {args.variant}")
    try:
        with contextlib.ExitStack() as stack:
            vision = stack.enter_context(stub("ocr-lite"))
            reasoner = stack.enter_context(stub("smollm2-135m"))
            redis_url = stack.enter_context(private_redis())
            urls = {"direct": f"{vision.base_url}/v1/chat/completions"}
            for name, checkout, env in variants:
                gw = stack.enter_context(
                    gateway(vision.base_url, reasoner.base_url, redis_url, env, checkout)
                )
                urls[name] = f"{gw.base_url}/v1/chat/completions"
            for target, url in urls.items():  # warm-up
                load.run(url, bodies[target], concurrency=8, duration_s=1)
            targets = list(urls)
            for round_no in range(args.rounds):
                for concurrency in concurrencies:
                    shift = round_no % len(targets)
                    for target in targets[shift:] + targets[:shift]:
                        result = load.run(
                            urls[target], bodies[target], concurrency=concurrency, duration_s=args.duration
                        )
                        results[target, concurrency].append(result)
                        print(
                            f"  round {round_no + 1} c={concurrency:<2} {target:12} "
                            f"p50 {result.p50_ms:6.2f} ms p95 {result.p95_ms:6.2f} ms {result.rps:7.1f} req/s"
                            + (f" ({result.errors} errors)" if result.errors else ""),
                            flush=True,
                        )
    finally:
        load.close()
    print()
    print_comparison(results, list(urls), concurrencies)


if __name__ == "__main__":
    main()
