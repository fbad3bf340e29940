"""Copy the Prometheus rules and the Grafana dashboard into the Helm chart.

Helm can read only files inside the chart, so the chart carries copies of
``deploy/prometheus/rules/*.yml`` (tested with promtool) and ``deploy/grafana/fraudradar.json``.
Run this after changing either; ``--check`` exits 1 when a copy differs (tests/deploy runs it).
No symlinks: they break ``helm package`` and Windows checkouts.

Usage: python deploy/tools/sync_chart_files.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1]
CHART_FILES = DEPLOY / "helm" / "fraudradar" / "files"


def pairs() -> list[tuple[Path, Path]]:
    """(source, copy in the chart) for every file the chart ships."""
    out = [(src, CHART_FILES / "prometheus-rules" / src.name)
           for src in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))]
    out.append((DEPLOY / "grafana" / "fraudradar.json", CHART_FILES / "dashboards" / "fraudradar.json"))
    return out


def stale() -> list[str]:
    """Copies that differ from their source, and chart copies whose source is gone."""
    problems = [str(dst) for src, dst in pairs() if not dst.exists() or dst.read_bytes() != src.read_bytes()]
    sources = {src.name for src, _ in pairs()}
    problems += [str(p) for p in (CHART_FILES / "prometheus-rules").glob("*.yml") if p.name not in sources]
    return problems


def main(argv: list[str]) -> int:
    if "--check" in argv:
        problems = stale()
        for path in problems:
            print(f"out of sync: {path} (run python deploy/tools/sync_chart_files.py)", file=sys.stderr)
        return 1 if problems else 0
    for src, dst in pairs():
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    sources = {src.name for src, _ in pairs()}
    for orphan in (CHART_FILES / "prometheus-rules").glob("*.yml"):
        if orphan.name not in sources:
            orphan.unlink()
    print(f"chart files in sync ({len(pairs())} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
