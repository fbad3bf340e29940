"""The backtest's ``report.html`` and its PNG plots (matplotlib, Agg backend, no network).

Plots: score distributions of fraud vs normal per entity type, time to detect per scenario,
alerts over time (hits vs false alarms), and the precision/recall curve over entity max scores.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from services.devtools.simulator.quality import AlertPoint, EntityKey, Evaluation, TruthEntity, level_at_least


@dataclass
class RunInfo:
    events_path: str
    truth_path: str
    min_level: str
    model_version: str
    policy_version: str
    key_id: str
    views: int
    rejected: dict[str, int] = field(default_factory=dict)
    alerts: int = 0
    normal_numbers: int = 0
    duration_days: float = 0.0
    seconds: float = 0.0


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _score_plot(path: Path, truth_keys: set[EntityKey], max_scores: Mapping[EntityKey, float]) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.linspace(0, 100, 26)
    for ax, entity_type in zip(axes, ("number", "device"), strict=True):
        fraud = [s for k, s in max_scores.items() if k[0] == entity_type and k in truth_keys]
        fraud += [0.0] * sum(1 for k in truth_keys if k[0] == entity_type and k not in max_scores)
        normal = [s for k, s in max_scores.items() if k[0] == entity_type and k not in truth_keys]
        if normal:
            ax.hist(normal, bins=bins, alpha=0.6, label=f"normal ({len(normal)})", color="tab:blue", log=True)
        if fraud:
            ax.hist(fraud, bins=bins, alpha=0.7, label=f"fraud ({len(fraud)})", color="tab:red", log=True)
        ax.set_title(f"{entity_type}s: highest score per entity")
        ax.set_xlabel("score")
        ax.set_ylabel("entities (log)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ttd_plot(path: Path, ttd_s: Mapping[str, list[float]]) -> None:
    plt = _plt()
    names = list(ttd_s)
    fig, ax = plt.subplots(figsize=(11, 4))
    data = [[v / 60 for v in ttd_s[n]] for n in names]
    positions = list(range(1, len(names) + 1))
    shown = [(p, d) for p, d in zip(positions, data, strict=True) if d]
    if shown:
        ax.boxplot([d for _, d in shown], positions=[p for p, _ in shown], widths=0.5, showfliers=True)
    ax.set_xticks(positions)
    ax.set_xticklabels([f"{n}\n({len(ttd_s[n])} det.)" for n in names], fontsize=8)
    ax.set_ylabel("time to detect (minutes, event time)")
    ax.set_title("time to detect per scenario")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _alerts_plot(path: Path, alerts: list[AlertPoint], truth_keys: set[EntityKey], min_level: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.5))
    qualifying = [a for a in alerts if level_at_least(a.level, min_level)]
    if qualifying:
        t0 = min(a.raised_ms for a in qualifying)
        t0 -= t0 % 3_600_000
        hits = [(a.raised_ms - t0) / 3_600_000 for a in qualifying if a.key in truth_keys]
        false = [(a.raised_ms - t0) / 3_600_000 for a in qualifying if a.key not in truth_keys]
        top = max(hits + false) + 1
        bins = np.arange(0, np.ceil(top) + 1)
        ax.hist([hits, false], bins=bins, stacked=True, color=["tab:red", "tab:gray"],
                label=["on truth entities", "false alarms"])
        ax.legend()
        start = datetime.fromtimestamp(t0 / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        ax.set_xlabel(f"hours since {start}")
    ax.set_ylabel(f"alerts >= {min_level}")
    ax.set_title("alerts over time")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _pr_plot(path: Path, truth_keys: set[EntityKey], max_scores: Mapping[EntityKey, float]) -> None:
    from sklearn.metrics import precision_recall_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    keys = sorted(set(max_scores) | truth_keys)
    y = np.asarray([k in truth_keys for k in keys], dtype=np.int8)
    if keys and 0 < y.sum() < len(y):
        s = np.asarray([max_scores.get(k, 0.0) for k in keys])
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, color="tab:red")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("precision / recall over entity max score")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape(str(value))


def write_report(out_dir: Path, evaluation: Evaluation, *, truth: list[TruthEntity], alerts: list[AlertPoint],
                 max_scores: Mapping[EntityKey, float], info: RunInfo) -> Path:
    truth_keys = {t.key for t in truth}
    _score_plot(out_dir / "scores.png", truth_keys, max_scores)
    _ttd_plot(out_dir / "ttd.png", evaluation.ttd_s)
    _alerts_plot(out_dir / "alerts_over_time.png", alerts, truth_keys, info.min_level)
    _pr_plot(out_dir / "pr_curve.png", truth_keys, max_scores)

    m = evaluation.metrics
    scenarios = m["scenarios"]
    overall = m["overall"]
    assert isinstance(scenarios, dict) and isinstance(overall, dict)
    cols = ("entities", "detected", "recall", "precision", "ttd_median_s", "ttd_p90_s")
    early = evaluation.detected_before_start
    rows = "".join(
        "<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{_fmt(vals[c])}</td>" for c in cols)
        + f"<td>{early.get(name, 0)}</td></tr>"
        for name, vals in scenarios.items())
    overall_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in overall.items())
    campaigns = m.get("campaigns")
    if isinstance(campaigns, dict):
        per = campaigns["campaigns_per_instance"]
        assert isinstance(per, dict)
        campaign_html = ("<h2>Campaign grouping</h2><p>Do the alerts' <code>campaign_id</code>s group the "
                         "entities of one scenario instance (one farm, one SIM box) together, and only them?</p>"
                         "<table>" + "".join(f"<tr><th>{k}</th><td>{_fmt(campaigns[k])}</td></tr>"
                                             for k in ("instances", "pair_recall", "pair_precision"))
                         + "".join(f"<tr><th>campaigns per instance: {html.escape(name)}</th><td>{_fmt(v)}</td></tr>"
                                   for name, v in per.items()) + "</table>")
    else:
        campaign_html = "<h2>Campaign grouping</h2><p>Not measured: the truth file names no instances.</p>"
    rejected = ", ".join(f"{k}: {v}" for k, v in sorted(info.rejected.items())) or "none"
    run_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in (
        ("events file", info.events_path), ("truth file", info.truth_path), ("events", m["events"]),
        ("events per second", m["events_per_s"]), ("views", info.views), ("rejected by ingest", rejected),
        ("model version", info.model_version), ("policy version", info.policy_version),
        ("pseudonym key id", info.key_id), ("detection threshold", f"alerts >= {info.min_level}"),
        ("alerts raised (all levels)", info.alerts), ("normal subscriber numbers", info.normal_numbers),
        ("event-time span (days)", info.duration_days), ("replay wall time (s)", info.seconds)))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fraudradar backtest</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f4f4f4; text-align: left; }}
img {{ max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }}
</style></head><body>
<h1>fraudradar backtest</h1>
<p>Entity-level detection: an entity counts as detected at its first alert at or above
<b>{html.escape(info.min_level)}</b> after its scenario started (event time), or with time to
detect 0 when an alert flagged it within the alert cooldown before its first act (column
"flagged before start"). Definitions: docs/backtest.md.</p>
<h2>Overall</h2><table>{overall_rows}</table>
<h2>Per scenario</h2>
<table><tr><th>scenario</th>{''.join(f'<th>{c}</th>' for c in cols)}<th>flagged before start</th></tr>{rows}</table>
{campaign_html}
<h2>Score distributions</h2><img src="scores.png" alt="score distributions">
<h2>Time to detect</h2><img src="ttd.png" alt="time to detect per scenario">
<h2>Alerts over time</h2><img src="alerts_over_time.png" alt="alerts over time">
<h2>Precision / recall</h2><img src="pr_curve.png" alt="precision recall curve">
<h2>Run</h2><table>{run_rows}</table>
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
