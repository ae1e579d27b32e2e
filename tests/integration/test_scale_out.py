"""Two gateway replicas behind nginx sharing one Redis, as docs/deploy.md scales them.

Real processes throughout: Debian's nginx, two ``python -m gateway``, one private Redis,
OpenAI stub upstreams. What a second replica must not change: a caption cached through
one replica is a hit through the other; a per-key rate limit counts across both exactly;
and when one replica dies (SIGKILL), every request sent after that still succeeds.
"""

from __future__ import annotations

import base64
import contextlib
import io
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from devkit.processes import ServiceProcess
from tests.support.gateway_procs import RedisProcess, gateway_process, stub_process
from tests.support.nginx import NGINX, nginx_process

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which(NGINX) is None and not Path(NGINX).exists(), reason="nginx: make nginx"),
]

KEYS = ("scale-key-a", "scale-key-b")
LIMIT = 7


class Cluster:
    def __init__(self, gateways: list[ServiceProcess], lb: ServiceProcess, redis: RedisProcess) -> None:
        self.gateways, self.lb, self.redis = gateways, lb, redis


@contextlib.contextmanager
def running_cluster(tmp_path: Path, env: dict[str, str]) -> Iterator[Cluster]:
    """Redis, two stubs, two gateway replicas sharing that Redis, and nginx over both."""
    with contextlib.ExitStack() as stack:
        redis = RedisProcess()
        stack.enter_context(redis)
        vision = stack.enter_context(stub_process("ocr-lite", latency_ms=5))
        reasoner = stack.enter_context(stub_process("stub-reasoner", latency_ms=5))
        gateways = [
            stack.enter_context(gateway_process(vision=vision, reasoner=reasoner, redis=redis, env=env))
            for _ in range(2)
        ]
        lb = stack.enter_context(nginx_process(gateways, tmp_path))
        yield Cluster(gateways, lb, redis)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """API keys and a per-key rate limit of LIMIT a minute."""
    env = {
        "GATEWAY_API_KEYS": ",".join(KEYS),
        "GATEWAY_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "GATEWAY_REASONER_LANGUAGES": "zh,en",  # the cascade question is Chinese
    }
    with running_cluster(tmp_path_factory.mktemp("nginx"), env) as running:
        yield running


@pytest.fixture
def open_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """No keys, no limit: for load."""
    with running_cluster(tmp_path, {}) as running:
        yield running


def png_data_url(seed: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (seed % 256, 90, 200)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def cascade_body(seed: int) -> dict[str, object]:
    content = [
        {"type": "text", "text": "为什么要付这笔钱?"},
        {"type": "image_url", "image_url": {"url": png_data_url(seed)}},
    ]
    return {"model": "auto", "messages": [{"role": "user", "content": content}]}


DIRECT: dict[str, object] = {"model": "direct", "messages": [{"role": "user", "content": "订单号是多少?"}]}


def post(base_url: str, body: dict[str, object], key: str, *, timeout: float = 20) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/chat/completions",
        json=body,
        timeout=timeout,
        headers={"Authorization": f"Bearer {key}"},
    )


def test_a_caption_cached_through_one_replica_is_a_hit_through_the_other(cluster: Cluster) -> None:
    a, b = cluster.gateways
    body = cascade_body(seed=11)
    first = post(a.base_url, body, KEYS[1])
    second = post(b.base_url, body, KEYS[1])
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.headers["X-FlashSight-Route"] == "cascade"
    assert (first.headers["X-FlashSight-Cache"], second.headers["X-FlashSight-Cache"]) == ("miss", "hit")
    sha = first.json()["flashsight"]["images"][0]
    with cluster.redis.client() as client:
        assert any(k.endswith(sha) for k in client.scan_iter("flashsight:caption:*"))


def test_a_per_key_rate_limit_is_exact_across_both_replicas(cluster: Cluster) -> None:
    statuses: Counter[int] = Counter()
    served_by: Counter[str] = Counter()
    for _ in range(LIMIT + 5):
        resp = post(cluster.lb.base_url, DIRECT, KEYS[0])
        statuses[resp.status_code] += 1
        if resp.status_code == 200:
            served_by[resp.headers["X-Upstream"]] += 1
    assert statuses == {200: LIMIT, 429: 5}
    assert len(served_by) == 2, f"nginx sent every request to one replica: {served_by}"
    limited = post(cluster.lb.base_url, DIRECT, KEYS[0])
    assert limited.status_code == 429 and limited.json()["error"]["type"]
    # the other key has its own budget
    assert post(cluster.lb.base_url, DIRECT, KEYS[1]).status_code == 200


def test_every_request_sent_after_one_replica_is_killed_succeeds(open_cluster: Cluster) -> None:
    cluster = open_cluster
    victim = cluster.gateways[0]
    results: list[tuple[float, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    killed_at = float("inf")

    def load() -> None:
        with httpx.Client(timeout=20) as client:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    code = client.post(f"{cluster.lb.base_url}/v1/chat/completions", json=DIRECT).status_code
                except httpx.HTTPError:
                    code = 0
                with lock:
                    results.append((sent, code))

    def wait_for(count: Callable[[], int], at_least: int) -> None:
        # by count, not by time: on a loaded machine a second may hold only a few requests
        deadline = time.monotonic() + 60
        while count() < at_least and time.monotonic() < deadline:
            time.sleep(0.05)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    wait_for(lambda: len(results), 20)
    victim.kill()  # returns once the process is reaped: requests in flight on it may fail
    killed_at = time.monotonic()
    wait_for(lambda: sum(sent > killed_at for sent, _ in list(results)), 40)
    stop.set()
    for w in workers:
        w.join(30)
    after = [code for sent, code in results if sent > killed_at]
    before = [code for sent, code in results if sent <= killed_at]
    assert len(before) >= 20 and len(after) >= 40, (len(before), len(after))
    assert Counter(after) == {200: len(after)}, Counter(after)
