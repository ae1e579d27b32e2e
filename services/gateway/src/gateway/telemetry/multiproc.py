"""/metrics totals across ``GATEWAY_WORKERS`` processes (Prometheus multiprocess mode).

With several uvicorn workers a scrape reaches one of them; a registry per process would
report that worker's share only, a different share on each scrape. Instead, when
``PROMETHEUS_MULTIPROC_DIR`` is set before the workers start, prometheus_client keeps
every counter, histogram and gauge value in a memory-mapped file per process there, and
:func:`render` sums them all, whichever worker answers. ``python -m gateway`` makes a
fresh directory for each start with workers (:func:`shared_metrics_dir`) and removes it
on exit. The in-flight gauge is summed over live workers; circuit breaker states are
per process (each worker has its own breakers), so they come from the answering worker
(``process_local``), like every metric does with one worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"


def enabled() -> bool:
    """Whether this process records into the shared directory (set before it started)."""
    return bool(os.environ.get(ENV))


@contextmanager
def shared_metrics_dir() -> Iterator[Path]:
    """A fresh directory for the workers' metric files, in the environment they inherit."""
    path = Path(tempfile.mkdtemp(prefix="flashsight-gateway-metrics-"))
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def render(process_local: Collector) -> bytes:
    """Every worker's series summed from the shared directory, plus this process's own."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(process_local)
    return generate_latest(registry)
