"""Which upstream HTTP client should the gateway use? A minimal proxy on each, measured alike.

The same FastAPI app (one route: read the body, POST it upstream, return the answer) is
run once with an ``httpx.AsyncClient`` and once with an ``aiohttp.ClientSession``, each
as its own uvicorn process (httptools, uvloop) in front of the 20 ms stub. wrk loads the
stub directly and both proxies in interleaved rounds. This is the comparison behind
the gateway's choice of aiohttp (services/gateway/src/gateway/upstream.py)::

    .venv/bin/python bench/http_clients.py              # about 1 minute
    .venv/bin/python bench/http_clients.py --quick

``--serve httpx|aiohttp --port N --upstream URL`` runs one proxy (what the bench starts).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from fastapi import FastAPI, Request, Response  # noqa: E402  (module level: FastAPI resolves annotations here)

from bench.gateway_overhead import chat_body, stub  # noqa: E402
from bench.loadgen import LoadResult, pick_load, print_comparison  # noqa: E402
from devkit.processes import ServiceProcess  # noqa: E402

CLIENTS = ("httpx", "aiohttp")


def build_proxy(client: str, upstream: str) -> FastAPI:
    """The minimal proxy app on ``client`` (both pooled, keep-alive, generous limits)."""
    import aiohttp
    import httpx

    url = f"{upstream}/v1/chat/completions"
    headers = {"Content-Type": "application/json"}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if client == "httpx":
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
            async with httpx.AsyncClient(limits=limits, timeout=30) as session:
                app.state.post = _httpx_post(session, url, headers)
                yield
        else:
            connector = aiohttp.TCPConnector(limit=256, limit_per_host=256)
            async with aiohttp.ClientSession(connector=connector) as session:
                app.state.post = _aiohttp_post(session, url, headers)
                yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/chat/completions")
    async def proxy(request: Request) -> Response:
        status, body = await request.app.state.post(await request.body())
        return Response(body, status_code=status, media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def _httpx_post(session: Any, url: str, headers: dict[str, str]) -> Any:
    async def post(body: bytes) -> tuple[int, bytes]:
        resp = await session.post(url, content=body, headers=headers)
        return resp.status_code, resp.content

    return post


def _aiohttp_post(session: Any, url: str, headers: dict[str, str]) -> Any:
    async def post(body: bytes) -> tuple[int, bytes]:
        async with session.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    return post


def serve(client: str, port: int, upstream: str) -> None:
    import uvicorn

    app = build_proxy(client, upstream)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http="httptools")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", choices=CLIENTS, help="run one proxy (used by the bench itself)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", default="")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.upstream)
        return
    rounds, duration = (1, 1) if args.quick else (args.rounds, args.duration)
    load = pick_load("auto")
    body = chat_body("订单号是多少?", model="ocr-lite")
    results: dict[tuple[str, int], list[LoadResult]] = {}
    try:
        with contextlib.ExitStack() as stack:
            upstream = stack.enter_context(stub("ocr-lite"))
            urls = {"direct": f"{upstream.base_url}/v1/chat/completions"}
            for client in CLIENTS:
                argv = [
                    sys.executable, str(Path(__file__)), "--serve", client, "--port", "{port}",
                    "--upstream", upstream.base_url,
                ]  # fmt: skip
                proxy = ServiceProcess(argv, name=f"proxy-{client}", ready_path="/readyz")
                stack.enter_context(proxy)
                urls[client] = f"{proxy.base_url}/v1/chat/completions"
            targets = list(urls)
            for target in targets:  # warm-up
                load.run(urls[target], body, concurrency=8, duration_s=1)
            for round_no in range(rounds):
                for concurrency in (1, 32):
                    shift = round_no % len(targets)
                    for target in targets[shift:] + targets[:shift]:
                        result = load.run(urls[target], body, concurrency=concurrency, duration_s=duration)
                        results.setdefault((target, concurrency), []).append(result)
    finally:
        load.close()
    print(f"load generator: {load.name}; {rounds} rounds x {duration} s; 20 ms stub upstream")
    print_comparison(results, list(urls), (1, 32))

if __name__ == "__main__":
    main()
