"""Fixtures for the deployment checks: the tools install-tools.sh builds, and the metric contract.

Tools are looked up on PATH, then in the cache install-tools.sh fills. A missing tool fails its
tests (`make test` installs them; a developer without them deselects tests/deploy on purpose).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "fraudradar"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
RULE_TESTS_DIR = ROOT / "deploy" / "prometheus" / "tests"
DASHBOARD = ROOT / "deploy" / "grafana" / "fraudradar.json"
KUBE_VERSION = "1.33.0"


def cache_dir() -> Path:
    return Path(os.environ.get("FRAUDRADAR_CACHE") or Path.home() / ".cache" / "fraudradar")


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(cache_dir() / "bin"))
    if found is None:
        pytest.fail(f"{name} not installed: run `bash scripts/install-tools.sh` (make test does)")
    return found


@pytest.fixture(scope="session")
def helm() -> str:
    return _tool("helm")


@pytest.fixture(scope="session")
def kubeconform() -> str:
    return _tool("kubeconform")


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def k8s_schemas() -> Path:
    path = cache_dir() / "k8s-schemas" / f"v{KUBE_VERSION}-local-strict"
    if not (path / ".complete").exists():
        pytest.fail(f"offline Kubernetes schemas missing in {path.parent}: run `bash scripts/install-tools.sh`")
    return path.parent


def documented_metrics() -> dict[str, str]:
    """``{metric name: type}`` from docs/metrics.md, the contract every consumer uses."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    return dict(re.findall(r"^\|\s*`(fraudradar_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|", text, flags=re.M))


def metrics_in(expr: str) -> set[str]:
    """Base metric names used in a PromQL expression (histogram suffixes folded)."""
    histograms = {name for name, kind in documented_metrics().items() if kind == "histogram"}
    names = set()
    # A name followed by a label matcher is a label (fraudradar_service="scorer"), not a metric.
    for found in re.findall(r"\bfraudradar_[a-z0-9_]+\b(?!\s*(?:!=|=~|!~|=(?!=)))", expr):
        base = found
        for suffix in ("_bucket", "_count", "_sum"):
            if found.endswith(suffix) and found.removesuffix(suffix) in histograms:
                base = found.removesuffix(suffix)
        names.add(base)
    return names


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing text output; the caller checks the return code."""
    return subprocess.run(cmd, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]
