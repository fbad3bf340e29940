"""``fraudradar backtest-sweep``: generate and backtest many randomised worlds, report the worst.

    fraudradar backtest-sweep --worlds 20 --subscribers 10000 --duration 6h --jobs 2 --out R

Each world is its own seed (``--seed-base`` + i, or the ``--seeds`` given) and so its own
network (``--world random``, docs/simulator.md). A world is generated to files, replayed
through ingest and the scorer exactly as ``fraudradar backtest`` does, and its raw events are
deleted afterwards unless ``--keep-events``. Worlds run in ``--jobs`` worker processes.

``--warmup`` (default 24h): each world first lives that long without fraud; the scorer processes
it from empty state and its alerts are reported apart as the cold start; every metric counts the
``--duration`` after it only. A deployment has been running for weeks when it matters, so its
24 h windows are full and its SIMs have been seen returning: 24 h is the scorer's longest feature
window, the shortest warm-up after which every windowed feature holds a full day.

Outputs in ``R``: ``sweep.json`` (every world's drawn parameters and metrics, and per metric the
worst world and the distribution over worlds), ``sweep.md`` and ``report.html`` with plots, and
``worlds/seed-N/`` (truth, world.json, metrics.json, alerts.jsonl of each world).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from tqdm import tqdm

from services.common.records import LEVELS
from services.devtools.simulator import catalog
from services.devtools.simulator.exceptions import SimulatorError
from services.devtools.simulator.params import WORLDS
from services.devtools.simulator.timeline import DEFAULT_START, parse_duration, parse_start, parse_warmup

DEFAULT_WARMUP = "24h"


@dataclass(frozen=True)
class WorldJob:
    seed: int
    subscribers: int
    duration_ms: int
    start_ms: int
    world: str
    intensity: float
    min_level: str
    out: Path
    keep_events: bool
    policy: Path | None = None      # scorer policy file (None: the shipped one)
    warmup_ms: int = 0              # normal life before the evaluated run (SimConfig.warmup_ms)


def run_world(job: WorldJob) -> dict[str, Any]:
    """Generate one world to files, backtest it, return its summary (runs in a worker process)."""
    from services.devtools.simulator.backtest import run_backtest
    from services.devtools.simulator.cli import write_files
    from services.devtools.simulator.generate import SimConfig, simulate

    started = time.perf_counter()
    config = SimConfig(subscribers=job.subscribers, duration_ms=job.duration_ms, seed=job.seed,
                       start_ms=job.start_ms, intensity=job.intensity, world=job.world, warmup_ms=job.warmup_ms)
    sim = simulate(config)
    job.out.mkdir(parents=True, exist_ok=True)
    write_files(sim, job.out, quiet=True)
    generated = time.perf_counter() - started
    evaluation = run_backtest(job.out / "events.jsonl", job.out / "truth.jsonl", job.out / "backtest",
                              min_level=job.min_level, quiet=True, report=False, policy_path=job.policy)
    if not job.keep_events:
        (job.out / "events.jsonl").unlink(missing_ok=True)
    world = orjson.loads((job.out / "world.json").read_bytes())
    return {"seed": job.seed, "events": sim.size, "truth_entities": len(sim.truth),
            "negative_entities": len(sim.negatives), "world": world["world"], "metrics": evaluation.metrics,
            "seconds": {"generate": generated, "total": time.perf_counter() - started}}


# metric name, where it lives, which direction is worse ("min": lower is worse)
def _metric_table(worlds: list[dict[str, Any]]) -> list[tuple[str, str, str, list[float | None]]]:
    """(metric id, label, worse direction, value per world); None where a world has no value."""
    rows: list[tuple[str, str, str, list[float | None]]] = []

    def overall(key: str) -> list[float | None]:
        return [w["metrics"]["overall"].get(key) for w in worlds]

    rows.append(("precision", "precision (overall)", "min", overall("precision")))
    rows.append(("false_alarms_per_100k_per_day", "false alarms per 100k normal subscribers per day", "max",
                 overall("false_alarms_per_100k_per_day")))
    rows.append(("recall", "recall (overall)", "min", overall("recall")))
    rows.append(("roc_auc", "ROC AUC (entity max score)", "min", overall("roc_auc")))
    names = [n for n in catalog.SCENARIOS if any(n in w["metrics"]["scenarios"] for w in worlds)]
    per_scenario = (("recall", "recall", "min"),
                    ("victims_before_alert_median", "median victims before alert", "max"),
                    ("ttd_median_s", "median time to detect (s)", "max"))
    for key, label, worse in per_scenario:
        for name in names:
            values: list[float | None] = []
            for w in worlds:
                s = w["metrics"]["scenarios"].get(name)
                values.append(None if s is None else s.get(key))
            rows.append((f"{name}.{key}", f"{name}: {label}", worse, values))
    return rows


def summarise(worlds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric the worst world and the distribution; per hard-negative class the worlds that flagged it."""
    metrics: dict[str, Any] = {}
    for metric, label, worse, values in _metric_table(worlds):
        present = [(v, w["seed"]) for v, w in zip(values, worlds, strict=True) if v is not None]
        if not present:
            metrics[metric] = {"label": label, "worse": worse, "worst": None, "worst_seed": None, "values": values}
            continue
        worst_value, worst_seed = (min if worse == "min" else max)(present, key=lambda p: p[0])
        arr = np.asarray([v for v, _ in present], dtype=np.float64)
        metrics[metric] = {
            "label": label, "worse": worse, "worst": float(worst_value), "worst_seed": int(worst_seed),
            "median": float(np.median(arr)), "p10": float(np.percentile(arr, 10)), "p90": float(np.percentile(arr, 90)),
            "min": float(arr.min()), "max": float(arr.max()), "worlds_with_value": len(present), "values": values,
        }
    classes: dict[str, Any] = {}
    for w in worlds:
        for cls, c in w["metrics"].get("hard_negatives", {}).get("classes", {}).items():
            entry = classes.setdefault(cls, {"worlds_present": 0, "worlds_flagged": 0, "entities": 0, "flagged": 0,
                                             "worst_share": 0.0, "worst_seed": None, "reasons": {},
                                             "seeds_flagged": []})
            entry["worlds_present"] += 1
            entry["entities"] += c["entities"]
            entry["flagged"] += c["flagged"]
            if c["flagged"]:
                entry["worlds_flagged"] += 1
                entry["seeds_flagged"].append(w["seed"])
                if c["flagged_share"] > entry["worst_share"]:
                    entry["worst_share"], entry["worst_seed"] = c["flagged_share"], w["seed"]
            for code, n in c["reasons"].items():
                entry["reasons"][code] = entry["reasons"].get(code, 0) + n
    unlabelled = [w["metrics"].get("hard_negatives", {}).get("unlabelled_false_alarms", 0) for w in worlds]
    return {"metrics": metrics, "hard_negatives": dict(sorted(classes.items())),
            "unlabelled_false_alarms": {"total": int(sum(unlabelled)), "worlds": int(sum(1 for u in unlabelled if u))}}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _strip(ax: Any, rows: list[tuple[str, dict[str, Any]]], xlabel: str, log: bool = False) -> None:
    """One row per metric: each world a dot, the worst world a red cross."""
    for i, (_, m) in enumerate(rows):
        values = [v for v in m["values"] if v is not None]
        if values:
            jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(values))
            ax.scatter(values, np.full(len(values), i) + jitter, s=14, color="tab:blue", alpha=0.7)
            ax.scatter([m["worst"]], [i], s=90, marker="x", color="tab:red")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, _ in rows], fontsize=8)
    ax.set_xlabel(xlabel)
    if log:
        ax.set_xscale("symlog", linthresh=1.0)
    ax.margins(x=0.08)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)


def write_plots(out: Path, summary: dict[str, Any]) -> list[tuple[str, str]]:
    plt = _plt()
    m = summary["metrics"]
    plots: list[tuple[str, str]] = []
    groups = (
        ("sweep_quality.png", "precision, recall, ROC AUC per world (x: worst)", "ratio", False,
         [k for k in m if k in ("precision", "recall", "roc_auc") or k.endswith(".recall")]),
        ("sweep_false_alarms.png", "false alarms per 100k normal subscribers per day per world",
         "false alarms /100k/day", True, ["false_alarms_per_100k_per_day"]),
        ("sweep_victims.png", "median victims before alert per scenario per world", "recipients", True,
         [k for k in m if k.endswith(".victims_before_alert_median")]),
        ("sweep_ttd.png", "median time to detect per scenario per world", "seconds (event time)", True,
         [k for k in m if k.endswith(".ttd_median_s")]),
    )
    for name, title, xlabel, log, keys in groups:
        rows = [(m[k]["label"], m[k]) for k in keys]
        fig, ax = plt.subplots(figsize=(10, 0.9 + 0.38 * max(1, len(rows))))
        _strip(ax, rows, xlabel, log)
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        plots.append((name, title))
    classes = summary["hard_negatives"]
    if classes:
        names = list(classes)
        fig, ax = plt.subplots(figsize=(10, 0.9 + 0.35 * len(names)))
        present = [classes[c]["worlds_present"] for c in names]
        flagged = [classes[c]["worlds_flagged"] for c in names]
        ax.barh(names, present, color="tab:gray", alpha=0.35, label="worlds with the class")
        ax.barh(names, flagged, color="tab:red", label="worlds where it was flagged")
        ax.set_xlabel("worlds")
        ax.invert_yaxis()
        ax.legend(fontsize=8)
        ax.set_title("hard-negative classes flagged (>= threshold) in how many worlds")
        fig.tight_layout()
        fig.savefig(out / "sweep_hard_negatives.png", dpi=90)
        plt.close(fig)
        plots.append(("sweep_hard_negatives.png", "hard-negative classes flagged in how many worlds"))
    return plots


def _f(value: object, metric: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if metric.endswith("_s") or "victims" in metric or "false_alarms" in metric:
            return f"{value:.1f}"
        return f"{value:.3f}"
    return str(value)


def write_reports(out: Path, doc: dict[str, Any]) -> None:
    summary = doc["summary"]
    plots = write_plots(out, summary)
    cfg = doc["config"]
    seeds = ", ".join(str(w["seed"]) for w in doc["worlds"])
    warmup = cfg.get("warmup", "0")
    warm_text = (f"Each world first lives {warmup} of normal life (no fraud) that the scorer processes from "
                 "empty state, as a deployment that has been running; every metric below counts only the "
                 f"{cfg['duration']} evaluated after it, and the alerts raised during the warm-up are reported "
                 "apart as the cold start (what a fresh deployment raises on its first day). "
                 if warmup != "0" else
                 "No warm-up: the scorer starts with empty state at the start of the evaluated run, so the "
                 "metrics include the cold start of a fresh deployment. ")
    caveat = (f"What this is: {len(doc['worlds'])} simulated worlds of {cfg['subscribers']} subscribers × "
              f"{cfg['duration']} (`--world {cfg['world']}`, `--warmup {warmup}`, seeds {seeds}). {warm_text}"
              "Each world has "
              "its parameters drawn from the ranges in docs/simulator.md (every world's drawn "
              "parameters are in sweep.json). It measures the detector against the simulator's model of "
              "normal life and fraud: it cannot tell how the detector does on a real network's traffic, on "
              "fraud the simulator does not model, or on classes of legitimate traffic it does not generate. "
              "For real labelled data use `fraudradar evaluate-table` (per-subscriber tables) or "
              "`fraudradar backtest` on an imported CDR export (`fraudradar import-cdr`).")
    md = [f"# fraudradar backtest sweep\n\n{caveat}\n",
          f"Detection threshold: alerts >= `{cfg['min_level']}`. Model: {doc['model_versions']}.\n",
          "## Worst world per metric\n", "| metric | worst | seed | median | p10 | p90 | worlds |",
          "|---|---|---|---|---|---|---|"]
    for key, m in summary["metrics"].items():
        md.append(f"| {m['label']} | {_f(m['worst'], key)} | {_f(m['worst_seed'])} | {_f(m.get('median'), key)} | "
                  f"{_f(m.get('p10'), key)} | {_f(m.get('p90'), key)} | {m.get('worlds_with_value', 0)} |")
    md += ["\n## Hard negatives\n", "Flagged = at least one alert at or above the threshold on a labelled normal "
           "entity of the class.\n", "| class | worlds with it | worlds flagged | entities | flagged | worst share "
           "(seed) | reasons |", "|---|---|---|---|---|---|---|"]
    for cls, c in summary["hard_negatives"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(c["reasons"].items(), key=lambda kv: -kv[1])) or "–"
        worst = f"{c['worst_share']:.3f} ({c['worst_seed']})" if c["worst_seed"] is not None else "–"
        md.append(f"| {cls} | {c['worlds_present']} | {c['worlds_flagged']} | {c['entities']} | {c['flagged']} | "
                  f"{worst} | {reasons} |")
    u = summary["unlabelled_false_alarms"]
    md.append(f"\nFalse alarms on normal entities outside every class: {u['total']} in {u['worlds']} worlds.\n")
    colds = [(w["seed"], w["metrics"]["cold_start"]) for w in doc["worlds"] if "cold_start" in w["metrics"]]
    if colds:
        md += ["## Cold start (warm-up, not counted above)\n",
               "Alerts at or above the threshold raised during the warm-up on normal entities: what a "
               "deployment raises on its first day from empty state; docs/detection.md (\"Warm-up and cold start\") "
               "says how to run a new deployment's first day without partners. Carried over = of these, still "
               "flagged in the evaluated window and so counted there as false alarms.\n",
               "| seed | warm-up h | false-alarm entities | FA /100k/day | carried over | by type | top reasons |",
               "|---|---|---|---|---|---|---|"]
        for seed, c in colds:
            types = ", ".join(f"{k} {v}" for k, v in c["false_alarms_by_type"].items()) or "–"
            reasons = ", ".join(f"{k} {v}" for k, v in list(c["false_alarm_reasons"].items())[:4]) or "–"
            md.append(f"| {seed} | {c['warmup_hours']:.1f} | {c['false_alarm_entities']} | "
                      f"{_f(c['false_alarms_per_100k_per_day'], 'false_alarms')} | {c['carried_over']} | {types} | "
                      f"{reasons} |")
        cold_seed, cold = max(colds, key=lambda sc: sc[1]["false_alarms_per_100k_per_day"])
        md.append(f"\nWorst cold start: {_f(cold['false_alarms_per_100k_per_day'], 'false_alarms')} false "
                  f"alarms /100k/day (seed {cold_seed}).\n")
    md.append("## Worlds\n")
    md.append("| seed | events | precision | FA /100k/day | recall | ROC AUC | wall s |")
    md.append("|---|---|---|---|---|---|---|")
    for w in doc["worlds"]:
        o = w["metrics"]["overall"]
        md.append(f"| {w['seed']} | {w['events']} | {_f(o['precision'])} | "
                  f"{_f(o['false_alarms_per_100k_per_day'], 'false_alarms')} | {_f(o['recall'])} | "
                  f"{_f(o['roc_auc'])} | {w['seconds']['total']:.0f} |")
    md.append("\n## Plots\n")
    md += [f"![{title}]({name})\n" for name, title in plots]
    (out / "sweep.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    html = _markdown_to_html("\n".join(md))
    (out / "report.html").write_text(html, encoding="utf-8")


def _markdown_to_html(md: str) -> str:
    """The sweep's Markdown (headings, pipe tables, paragraphs, images) as a standalone page."""
    import html as h
    import re

    body: list[str] = []
    table: list[list[str]] = []

    def inline(text: str) -> str:
        text = h.escape(text)
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        return re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img src="\2" alt="\1">', text)

    def flush() -> None:
        if table:
            head, *rest = table
            body.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rest)
                        + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        flush()
        if line.startswith("## "):
            body.append(f"<h2>{inline(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{inline(line[2:])}</h1>")
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
    flush()
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>fraudradar backtest sweep</title>"
            "<style>body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }"
            "table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 8px; }"
            "th { background: #f4f4f4; } img { max-width: 100%; }</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def run_sweep(out: Path, seeds: list[int], *, subscribers: int, duration: str, world: str = "random",
              jobs: int = 1, intensity: float = 1.0, min_level: str = "high", start: str = DEFAULT_START,
              keep_events: bool = False, quiet: bool = False, policy: Path | None = None,
              warmup: str = DEFAULT_WARMUP) -> dict[str, Any]:
    duration_ms = parse_duration(duration)
    warmup_ms = parse_warmup(warmup)
    start_ms = parse_start(start)
    out.mkdir(parents=True, exist_ok=True)
    todo = [WorldJob(seed, subscribers, duration_ms, start_ms, world, intensity, min_level,
                     out / "worlds" / f"seed-{seed}", keep_events, policy, warmup_ms) for seed in seeds]
    results: dict[int, dict[str, Any]] = {}
    started = time.perf_counter()
    with tqdm(total=len(todo), desc="sweep", unit="world", disable=quiet, file=sys.stderr) as bar:
        if jobs <= 1:
            for job in todo:
                bar.set_postfix_str(f"seed {job.seed}")
                results[job.seed] = run_world(job)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                pending: dict[Future[dict[str, Any]], int] = {pool.submit(run_world, job): job.seed for job in todo}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        seed = pending.pop(fut)
                        results[seed] = fut.result()
                        o = results[seed]["metrics"]["overall"]
                        bar.set_postfix_str(f"seed {seed}: precision {o['precision']:.2f}, "
                                            f"FA/100k/day {o['false_alarms_per_100k_per_day']:.0f}")
                        bar.update(1)
    worlds = [results[s] for s in seeds]
    doc = {
        "config": {"worlds": len(seeds), "seeds": seeds, "subscribers": subscribers, "duration": duration,
                   "world": world, "intensity": intensity, "min_level": min_level, "start": start, "jobs": jobs,
                   "warmup": warmup},
        "model_versions": ", ".join(sorted({str(w["metrics"].get("model_version")) for w in worlds})),
        "seconds": time.perf_counter() - started,
        "summary": summarise(worlds),
        "worlds": worlds,
    }
    (out / "sweep.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    write_reports(out, doc)
    return doc


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fraudradar backtest-sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worlds", type=int, default=20, help="how many worlds (seeds seed-base .. seed-base+N-1)")
    p.add_argument("--seeds", default="", help="comma-separated seeds instead of --worlds/--seed-base")
    p.add_argument("--subscribers", type=int, required=True, help="normal subscribers per world")
    p.add_argument("--duration", default="24h", help="run length per world (default 24h)")
    p.add_argument("--seed-base", type=int, default=1000, help="first seed (default 1000)")
    p.add_argument("--world", default="random", choices=WORLDS, help="random (default) or the fixed reference world")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--intensity", type=float, default=1.0, help="fraud strength (world draws multiply it)")
    p.add_argument("--min-level", default="high", choices=LEVELS[1:], help="alerts at or above count (default high)")
    p.add_argument("--policy", type=Path, default=None, help="scorer policy file (default: the shipped one)")
    p.add_argument("--warmup", default=DEFAULT_WARMUP,
                   help=f"normal life the scorer processes before each evaluated run, reported apart as the cold "
                        f"start (default {DEFAULT_WARMUP}: the scorer's longest feature windows are 24 h; 0 = none)")
    p.add_argument("--keep-events", action="store_true", help="keep each world's events.jsonl")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        if args.seeds.strip():
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        else:
            seeds = list(range(args.seed_base, args.seed_base + args.worlds))
        if not seeds:
            raise SimulatorError("no worlds to run (--worlds must be at least 1)")
        if len(set(seeds)) != len(seeds):
            raise SimulatorError("--seeds names a seed twice")
        if args.subscribers < 100:
            raise SimulatorError("--subscribers must be at least 100")
        if args.jobs < 1:
            raise SimulatorError("--jobs must be at least 1")
        doc = run_sweep(args.out, seeds, subscribers=args.subscribers, duration=args.duration, world=args.world,
                        jobs=args.jobs, intensity=args.intensity, min_level=args.min_level,
                        keep_events=args.keep_events, quiet=args.quiet, warmup=args.warmup,
                        policy=args.policy.resolve() if args.policy else None)
    except (SimulatorError, ValueError) as exc:
        print(f"fraudradar backtest-sweep: {exc}", file=sys.stderr)
        return 2
    m = doc["summary"]["metrics"]
    print(f"worst world: precision {_f(m['precision']['worst'])} (seed {m['precision']['worst_seed']}), "
          f"false alarms/100k/day {_f(m['false_alarms_per_100k_per_day']['worst'], 'false_alarms')} "
          f"(seed {m['false_alarms_per_100k_per_day']['worst_seed']}) -> {args.out / 'report.html'}", file=sys.stderr)
    return 0


__all__ = ["main", "run_sweep", "run_world"]
