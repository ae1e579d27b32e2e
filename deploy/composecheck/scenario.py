"""The user's story compose-check walks through, each step a pass or a fail."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from deploy.composecheck import client
from deploy.composecheck.docker import Compose, DockerError

SERVICES = ("redis", "vision", "reasoner", "gateway")
# a cold start converts nothing (the reasoner image holds its model), but cores may be shared
HEALTH_TIMEOUT_S = 900.0
# a restarted reasoner's first answers are slow (warm-up) and the gateway's circuit may be
# open for a few seconds: cascade answers must be back within this
CASCADE_BACK_S = 180.0


@dataclass
class Tally:
    """Passed and failed checks, printed as they happen."""

    passed: int = 0
    failed: int = 0

    def check(self, name: str, ok: bool, detail: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        return ok


@dataclass
class RequestLoop:
    """Cascade requests one after another, until stopped: the traffic an upgrade must not fail."""

    base_url: str
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = client.chat(self.base_url, client.CASCADE_QUESTION, timeout=120)
            if answer.status == 200:
                self.statuses["degraded" if answer.degraded != "false" else "cascade"] += 1
            else:
                self.statuses[f"failed_{answer.status}"] += 1
                self.failures.append(answer.summary())
            self._stop.wait(0.25)

    def __enter__(self) -> RequestLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=180)


def until(
    predicate: Callable[[], client.Answer], *, accept: Callable[[client.Answer], bool], timeout_s: float
) -> client.Answer:
    """Repeat a request until its answer is accepted (or the time is up): the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = predicate()
        if accept(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(2)


def cascade_ok(answer: client.Answer) -> bool:
    return answer.status == 200 and answer.route == "cascade" and answer.degraded == "false"


def run_scenario(compose: Compose, base_url: str, tally: Tally) -> None:
    """Everything after the images are built: up, requests, faults, upgrade (down is the caller's)."""
    started = time.monotonic()
    compose("up", "-d", quiet=False)
    states = compose.wait_healthy(SERVICES, timeout_s=HEALTH_TIMEOUT_S)
    if not tally.check(
        "healthchecks",
        all(s == "healthy" for s in states.values()),
        f"{states} after {time.monotonic() - started:.0f}s",
    ):
        return

    answer = client.chat(base_url, client.README_QUESTION)
    tally.check(
        "README curl",
        answer.status == 200
        and client.ORDER_NUMBER in answer.content
        and "ocr-lite" in answer.headers.get("x-flashsight-models", ""),
        answer.summary(),
    )

    first = client.chat(base_url, client.CASCADE_QUESTION)
    second = client.chat(base_url, client.CASCADE_QUESTION)
    tally.check("cascade, first", cascade_ok(first) and first.cache == "miss", first.summary())
    tally.check(
        "cascade, second is a caption-cache hit",
        cascade_ok(second) and second.cache == "hit",
        second.summary(),
    )
    images = first.body.get("flashsight", {}).get("images") or ["?"]
    keys = compose("exec", "-T", "redis", "redis-cli", "--scan", "--pattern", "flashsight:caption:*").split()
    tally.check(
        "caption key in the redis container",
        any(k.endswith(images[0]) for k in keys),
        f"{len(keys)} key(s): {keys[:2]}",
    )

    compose("kill", "reasoner")
    down = client.chat(base_url, client.CASCADE_QUESTION)
    tally.check(
        "reasoner killed: answered degraded",
        down.status == 200 and down.degraded.startswith("reasoner_"),
        down.summary(),
    )
    compose("start", "reasoner")
    states = compose.wait_healthy(["reasoner"], timeout_s=HEALTH_TIMEOUT_S)
    back = until(
        lambda: client.chat(base_url, client.CASCADE_QUESTION), accept=cascade_ok, timeout_s=CASCADE_BACK_S
    )
    tally.check(
        "reasoner started: cascade again",
        states["reasoner"] == "healthy" and cascade_ok(back),
        back.summary(),
    )

    upgrade_reasoner(compose, base_url, tally)


def upgrade_reasoner(compose: Compose, base_url: str, tally: Tally) -> None:
    """Rebuild and recreate only the reasoner while requests keep coming: none may fail."""
    others = {s: compose.container_id(s) for s in SERVICES if s != "reasoner"}
    old = compose.container_id("reasoner")
    with RequestLoop(base_url) as loop:
        time.sleep(3)
        started = time.monotonic()
        try:
            compose("up", "-d", "--no-deps", "--build", "--force-recreate", "reasoner", quiet=False)
        except DockerError as exc:
            tally.check("reasoner rebuilt and recreated", False, str(exc)[-500:])
            return
        states = compose.wait_healthy(["reasoner"], timeout_s=HEALTH_TIMEOUT_S)
        back = until(
            lambda: client.chat(base_url, client.CASCADE_QUESTION),
            accept=cascade_ok,
            timeout_s=CASCADE_BACK_S,
        )
        took = time.monotonic() - started
        time.sleep(3)
    new = compose.container_id("reasoner")
    kept = {s: compose.container_id(s) == cid for s, cid in others.items()}
    tally.check(
        "only the reasoner was recreated",
        new != old and all(kept.values()) and states["reasoner"] == "healthy",
        f"reasoner {old[:12]} -> {new[:12]}, others kept: {kept}, {took:.0f}s to cascade again",
    )
    tally.check(
        "zero failed requests during the upgrade",
        not loop.failures and sum(loop.statuses.values()) > 0,
        f"{dict(loop.statuses)} (degraded answers are allowed while it restarts)"
        f"{' first failure: ' + loop.failures[0] if loop.failures else ''}",
    )
    tally.check("cascade answers after the upgrade", cascade_ok(back), back.summary())
