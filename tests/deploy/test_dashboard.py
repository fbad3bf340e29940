"""The Grafana dashboard: valid JSON, sane layout, and only metrics the services document."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.conftest import DASHBOARD, documented_metrics, metrics_in


def _panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert any(v["type"] == "datasource" for v in dashboard["templating"]["list"])
    for panel in _panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_panels_use_only_documented_metrics() -> None:
    known = set(documented_metrics())
    for panel in _panels():
        for target in panel["targets"]:
            used = metrics_in(target["expr"])
            assert used, f"{panel['title']}: a target without a fraudradar metric"
            assert used <= known, f"{panel['title']}: not in docs/metrics.md: {used - known}"


def test_every_documented_metric_is_on_the_dashboard() -> None:
    used = {m for panel in _panels() for target in panel["targets"] for m in metrics_in(target["expr"])}
    missing = set(documented_metrics()) - used
    assert not missing, f"metrics nobody looks at: {sorted(missing)}"


def test_dashboard_covers_the_issue_list() -> None:
    titles = " | ".join(p["title"].lower() for p in _panels())
    for topic in ("events", "lag", "latency", "dlq by reason", "alerts by level", "alerts by reason",
                  "score distribution", "requests by partner", "webhook"):
        assert topic in titles, topic
