"""docs/operations.md and the Grafana dashboard name exactly the metrics the services export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.telemetry.metrics import GatewayMetrics
from modelserver.metrics import ModelMetrics
from prometheus_client.parser import text_string_to_metric_families

DOCS = Path(__file__).resolve().parents[2] / "docs"
_NAME = re.compile(r"flashsight_(?:gateway|model)_[a-z_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def exported() -> set[str]:
    """Sample names (counters with _total) the two registries expose, histogram suffixes stripped."""
    names = set()
    for metrics in (GatewayMetrics(), ModelMetrics()):
        for family in text_string_to_metric_families(metrics.render().decode()):
            names |= {s.name for s in family.samples}
            names.add(family.name if family.type != "counter" else f"{family.name}_total")
    return {n for n in names if not n.endswith("_created")}


def base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana" / "flashsight.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {base(n) for e in exprs for n in _NAME.findall(e)}
    known = {base(n) for n in exported()}
    assert used and used <= known, f"unknown in the dashboard: {sorted(used - known)}"
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(dashboard["panels"]) + 1))


def test_operations_doc_explains_every_metric() -> None:
    text = (DOCS / "operations.md").read_text()
    documented = {base(n) for n in _NAME.findall(text)}
    families = {base(n) for n in exported() if not n.endswith(("_bucket", "_count", "_sum"))}
    assert families <= documented, f"not in docs/operations.md: {sorted(families - documented)}"
    assert documented <= {base(n) for n in exported()}, "docs name a metric nobody exports"
