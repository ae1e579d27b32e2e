"""Waits until every service's /readyz answers 200."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Readiness:
    """The last answer of each /readyz, and whether all were 200."""

    last: dict[str, str] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)

    def all_ready(self, names: list[str]) -> bool:
        return set(names) <= self.ready


def probe(url: str, *, timeout: float = 2.0) -> tuple[bool, str]:
    """(ready, what it said) for one /readyz URL."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode("utf-8", "replace")
        return False, f"HTTP {exc.code} {body}".strip()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"not answering ({reason})"


def wait_until_ready(
    urls: dict[str, str],
    *,
    timeout: float,
    still_running: Callable[[], bool] = lambda: True,
    interval: float = 0.5,
    check: Callable[[str], tuple[bool, str]] = probe,
) -> Readiness:
    """Poll ``urls`` (name -> /readyz URL) until all say 200, time runs out, or the stack stops."""
    state = Readiness()
    deadline = time.monotonic() + timeout
    while True:
        for name, url in urls.items():
            if name not in state.ready:
                ok, said = check(url)
                state.last[name] = said
                if ok:
                    state.ready.add(name)
        if state.all_ready(list(urls)) or time.monotonic() >= deadline or not still_running():
            return state
        time.sleep(interval)
