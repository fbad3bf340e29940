"""The backtest's ``report.html`` and its PNG plots (matplotlib, Agg backend, no network).

Plots: score distributions of fraud vs normal per entity type, time to detect per scenario,
alerts over time (hits vs false alarms), and the precision/recall curve over entity max scores.
Times to detect are in seconds of event time everywhere (tables and plots); ratios have three
decimals, seconds and victims one.
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
    world: dict[str, Any] | None = None    # world.json of the simulated run, when beside the truth file


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
    data = [list(ttd_s[n]) for n in names]
    positions = list(range(1, len(names) + 1))
    shown = [(p, d) for p, d in zip(positions, data, strict=True) if d]
    if shown:
        ax.boxplot([d for _, d in shown], positions=[p for p, _ in shown], widths=0.5, showfliers=True)
    ax.set_xticks(positions)
    ax.set_xticklabels([f"{n}\n({len(ttd_s[n])} det.)" for n in names], fontsize=8)
    ax.set_ylabel("time to detect (s, event time)")
    if any(v > 0 for d in data for v in d):
        ax.set_yscale("symlog", linthresh=10.0)
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


def _fmt(value: object, key: str = "") -> str:
    """Ratios with three decimals; seconds, victims and per-day rates with one; counts as integers."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if key.endswith("_s") or "victims" in key or "per_100k" in key or "seconds" in key or "days" in key:
            return f"{value:,.1f}"
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _param(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _fmt(value)


def _world_html(info: RunInfo) -> str:
    """What the data is: the simulated world, its seed and drawn parameters, what it cannot tell."""
    cannot = ("A simulated world measures the detector against the simulator's own model of normal life "
              "and fraud. It cannot tell how detection does on a real network's traffic, on fraud the "
              "simulator does not model, or on legitimate traffic it does not generate; perfect numbers "
              "here are no evidence of perfect numbers there. Randomised worlds "
              "(<code>fraudradar simulate --world random</code>) and the worst world of "
              "<code>fraudradar backtest-sweep</code> are a harder test than one seed. For real labelled "
              "data: <code>fraudradar evaluate-table</code> (per-subscriber feature tables with a fraud "
              "label) or <code>fraudradar import-cdr</code> then <code>fraudradar backtest</code>.")
    if not info.world:
        return ("<h2>What this data is</h2><p>No <code>world.json</code> beside the truth file: not a run of "
                f"<code>fraudradar simulate</code> with world parameters. {cannot}</p>")
    w = info.world.get("world", {})
    assert isinstance(w, dict)
    shown = {k: v for k, v in w.items() if k not in ("a2p_senders", "fraud_intensity")}
    senders = w.get("a2p_senders") or []
    names = ", ".join(html.escape(str(s.get("name"))) for s in senders if isinstance(s, dict))
    intensity = w.get("fraud_intensity") or {}
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>"
                   f"{html.escape(str(v)) if isinstance(v, list | tuple) else _param(v)}</td></tr>"
                   for k, v in shown.items())
    rows += f"<tr><th>A2P senders ({len(senders)})</th><td>{names}</td></tr>"
    rows += "".join(f"<tr><th>fraud intensity: {html.escape(k)}</th><td>{_fmt(v)}</td></tr>"
                    for k, v in intensity.items())
    return (f"<h2>What this data is</h2><p>A simulated world: <code>fraudradar simulate --world "
            f"{html.escape(str(w.get('kind')))} --seed {html.escape(str(info.world.get('seed')))} "
            f"--subscribers {html.escape(str(info.world.get('subscribers')))}</code>, "
            f"{_fmt(float(info.world.get('duration_ms', 0)) / 3_600_000, 'days')} h of event time. "
            f"{cannot}</p><details><summary>The world's drawn parameters (ranges: docs/simulator.md)</summary>"
            f"<table>{rows}</table></details>")


def _hard_negatives_html(metrics: dict[str, object], min_level: str) -> str:
    hn = metrics.get("hard_negatives")
    if not isinstance(hn, dict) or not hn.get("classes"):
        return ("<h2>Hard negatives</h2><p>Not measured: the truth file labels no normal entities "
                "(<code>\"label\": \"negative\"</code> lines come from <code>fraudradar simulate</code>).</p>")
    classes = hn["classes"]
    assert isinstance(classes, dict)
    rows = "".join(
        f"<tr><td>{html.escape(cls)}</td><td>{_fmt(c['entities'])}</td><td>{_fmt(c['flagged'])}</td>"
        f"<td>{_fmt(c['flagged_share'])}</td><td>{_fmt(c['flagged_any_level'])}</td>"
        f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in c['levels'].items()) or '–')}</td>"
        f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in c['reasons'].items()) or '–')}</td></tr>"
        for cls, c in classes.items())
    return (f"<h2>Hard negatives</h2><p>Labelled normal entities that look like fraud on one axis; flagged = "
            f"an alert at or above <b>{html.escape(min_level)}</b>. False alarms outside every class: "
            f"{_fmt(hn.get('unlabelled_false_alarms'))}.</p><table><tr><th>class</th><th>entities</th>"
            "<th>flagged</th><th>flagged share</th><th>alerted at any level</th><th>highest levels</th>"
            f"<th>reasons (flagged)</th></tr>{rows}</table>")


def _cold_start_html(metrics: dict[str, object]) -> str:
    cold = metrics.get("cold_start")
    if not isinstance(cold, dict):
        return ""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in (
        ("warm-up (h)", f"{cold['warmup_hours']:.1f}"), ("views scored", _fmt(cold["views"])),
        ("alerts (all levels)", _fmt(cold["alerts"])), ("false-alarm entities", _fmt(cold["false_alarm_entities"])),
        ("false alarms per 100k per day", _fmt(cold["false_alarms_per_100k_per_day"], "per_100k")),
        ("still flagged after it (counted above)", _fmt(cold["carried_over"])),
        ("reasons", ", ".join(f"{k} {v}" for k, v in cold["false_alarm_reasons"].items()) or "–")))
    return ("<h2>Cold start (warm-up, not in the metrics above)</h2><p>Events before the evaluated window "
            "were scored to warm the scorer's state up and are counted nowhere above; what it raised then, "
            "from empty state, is what a fresh deployment raises on its first day "
            "(<code>cold_start_alerts.jsonl</code>).</p>"
            f"<table>{rows}</table>")


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
    cols = ("entities", "detected", "recall", "precision", "ttd_median_s", "ttd_p90_s", "victims_before_alert_median",
            "victims_before_alert_p90")
    early = evaluation.detected_before_start
    rows = "".join(
        "<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{_fmt(vals.get(c), c)}</td>" for c in cols)
        + f"<td>{early.get(name, 0)}</td></tr>"
        for name, vals in scenarios.items())
    overall_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v, k)}</td></tr>" for k, v in overall.items())
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
    head = {"ttd_median_s": "time to detect, median (s)", "ttd_p90_s": "time to detect, p90 (s)",
            "victims_before_alert_median": "victims before alert, median",
            "victims_before_alert_p90": "victims before alert, p90"}
    heads = "".join(f"<th>{head.get(c, c)}</th>" for c in cols)
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
{_world_html(info)}
<h2>Overall</h2><table>{overall_rows}</table>
<h2>Per scenario</h2>
<p>Victims before alert: distinct recipients an entity contacted (SMS sent, call placed) from its
first act up to its detecting alert; an undetected entity counts all of them.</p>
<table><tr><th>scenario</th>{heads}<th>flagged before start</th></tr>{rows}</table>
{_hard_negatives_html(m, info.min_level)}
{_cold_start_html(m)}
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
