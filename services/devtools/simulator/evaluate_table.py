"""``fraudradar evaluate-table``: how the models rank fraud on a labelled per-subscriber table.

    fraudradar evaluate-table TABLE.csv --label is_fraud [--id subscriber_id] [--seed 0]
                              [--label-delay 500] [--out evaluate-table]
    fraudradar evaluate-table --make-sample TABLE.csv [--rows 6000] [--seed 0]

Telcos' fraud teams hold tables of per-subscriber aggregates (monthly call/SMS/usage features)
with a fraud label. This replays such a table row by row, in an order shuffled with ``--seed``,
through the detectors (``ScaledHalfSpaceTrees``, ``StreamingECOD``) and the feedback learner,
prequentially: every row is scored first and learned after, so each score comes from a model
that has not seen that row. The detectors learn every row (they never see labels); the feedback
learner gets each row's label ``--label-delay`` rows later (partner feedback arrives late). For
reference the same stream goes through River's own ``HalfSpaceTrees`` (behind its
``MinMaxScaler``) and River's ``StandardScaler`` → ``LogisticRegression`` (same label delay;
River takes no NaN, so empty fields are left out of its dicts).

Written to ``--out``: ``metrics.json`` (ROC AUC and PR AUC, i.e. average precision, per model,
over every row's prequential score; for HST and ECOD the features their per-feature
contributions name most often among their 5 % highest-scored rows; the columns used and
skipped) and ``report.html`` with the ROC and precision/recall curves per model (PNG, also
embedded in the page) and those features.

Input: a CSV with a header. ``--label`` names a column of numbers (fraud = not 0); a row whose
label is empty is skipped and counted. Feature cells that are empty or ``NA``/``NaN``/``null``/``?``
are missing (the models handle missing as missing). A column with no number at all (a plan
name, a region) is skipped with that reason; text cells in a numeric column are missing and
counted per column. The ``--id`` column is never a feature and is not written anywhere (it may
hold subscriber numbers). Exit codes: 0 done, 2 bad input or arguments.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.devtools.simulator.exceptions import SimulatorError

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})
HST_WINDOW = 250          # River's default window: a 6 000-row table holds 24 of them


class TableError(SimulatorError):
    """The table cannot be evaluated (shown to the user, exit code 2)."""


@dataclass
class Table:
    """A parsed table: features per row (NaN = missing), labels, and what was left out why."""

    features: list[str]
    rows: list[dict[str, float]]
    labels: list[int]
    skipped_columns: dict[str, str] = field(default_factory=dict)
    non_numeric_cells: dict[str, int] = field(default_factory=dict)
    skipped_rows: dict[str, int] = field(default_factory=dict)
    missing_cells: int = 0


def _number(cell: str) -> float | None:
    """The cell's number; NaN for a missing token; None for text."""
    text = cell.strip()
    if text.lower() in MISSING_TOKENS:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else math.nan


def read_table(path: Path, label: str, id_column: str | None = None) -> Table:
    """Parse and check ``path`` (see the module docstring for the rules)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            records = list(csv.reader(fh))
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TableError(f"{path} is not a readable CSV file: {exc}") from exc
    records = [r for r in records if any(c.strip() for c in r)]
    if not records:
        raise TableError(f"{path} is empty: expected a header line and rows")
    header = [h.strip() for h in records[0]]
    body = records[1:]
    if not body:
        raise TableError(f"{path} has a header but no rows")
    if label not in header:
        raise TableError(f"label column {label!r} is not in {path} (columns: {', '.join(header)})")
    if id_column is not None and id_column not in header:
        raise TableError(f"id column {id_column!r} is not in {path} (columns: {', '.join(header)})")
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        raise TableError(f"{path}: column names appear twice: {', '.join(twice)}")
    li = header.index(label)
    candidates = [i for i, h in enumerate(header) if h not in (label, id_column)]
    labels: list[int] = []
    kept: list[list[str]] = []
    skipped_rows: dict[str, int] = {}
    for lineno, record in enumerate(body, start=2):
        if len(record) != len(header):
            raise TableError(f"{path}:{lineno}: {len(record)} fields, the header has {len(header)}")
        value = _number(record[li])
        if value is None:
            raise TableError(f"{path}:{lineno}: label {record[li]!r} in column {label!r} is not a number "
                             "(expected 0 = normal, anything else = fraud)")
        if math.isnan(value):
            skipped_rows["empty_label"] = skipped_rows.get("empty_label", 0) + 1
            continue
        labels.append(0 if value == 0.0 else 1)
        kept.append(record)
    if not kept:
        raise TableError(f"{path}: no row has a label in column {label!r}")
    if len(set(labels)) < 2:
        raise TableError(f"{path}: every labelled row is {'fraud' if labels[0] else 'normal'}; "
                         "ranking needs both classes")
    features: list[str] = []
    columns: dict[int, list[float]] = {}
    skipped: dict[str, str] = {}
    non_numeric: dict[str, int] = {}
    for i in candidates:
        parsed = [_number(r[i]) for r in kept]
        numbers = sum(1 for v in parsed if v is not None and not math.isnan(v))
        texts = sum(1 for v in parsed if v is None)
        if numbers == 0:
            skipped[header[i]] = ("text column (no cell is a number)" if texts
                                  else "empty column (every cell is missing)")
            continue
        if texts:
            non_numeric[header[i]] = texts
        features.append(header[i])
        columns[i] = [math.nan if v is None else v for v in parsed]
    if not features:
        raise TableError(f"{path}: no numeric feature column (skipped: "
                         + ", ".join(f"{k}: {v}" for k, v in skipped.items()) + ")")
    index = [i for i in candidates if i in columns]
    rows = [{header[i]: columns[i][r] for i in index} for r in range(len(kept))]
    missing = sum(1 for row in rows for v in row.values() if math.isnan(v))
    return Table(features, rows, labels, skipped, non_numeric, skipped_rows, missing)


class Scorer(Protocol):
    """One model in the replay: score a row, then learn it (with its label when supervised)."""

    supervised: bool

    def score(self, x: dict[str, float]) -> float: ...

    def learn(self, x: dict[str, float], y: int | None) -> None: ...


class Detector:
    """An unsupervised model (``score_one``/``learn_one``); NaN-free dicts when ``drop_nan``."""

    supervised = False

    def __init__(self, model: Any, drop_nan: bool = False) -> None:
        self.model = model
        self.drop_nan = drop_nan

    def _x(self, x: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in x.items() if not math.isnan(v)} if self.drop_nan else x

    def score(self, x: dict[str, float]) -> float:
        return float(self.model.score_one(self._x(x)))

    def learn(self, x: dict[str, float], y: int | None) -> None:
        self.model.learn_one(self._x(x))

    def explain(self, x: dict[str, float]) -> str | None:
        """The feature contributing most to the score (``contributions_one``), if the model tells."""
        contributions = getattr(self.model, "contributions_one", None)
        if contributions is None:
            return None
        found: dict[str, float] = contributions(self._x(x))
        return max(found, key=found.__getitem__) if found else None


class Classifier:
    """A supervised model: ``learn_one(x, bool)`` and ``proba_one``/``predict_proba_one``."""

    supervised = True

    def __init__(self, model: Any, drop_nan: bool = False) -> None:
        self.model = model
        self.drop_nan = drop_nan

    def _x(self, x: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in x.items() if not math.isnan(v)} if self.drop_nan else x

    def score(self, x: dict[str, float]) -> float:
        predict = getattr(self.model, "predict_proba_one", None)
        if predict is not None:                 # River's classifiers
            return float(predict(self._x(x)).get(True, 0.0))
        return float(self.model.score_one(self._x(x)))

    def learn(self, x: dict[str, float], y: int | None) -> None:
        self.model.learn_one(self._x(x), bool(y))


def default_models(features: Sequence[str], seed: int) -> dict[str, Callable[[], Scorer]]:
    """Ours, and River's for reference, each a fresh factory (name → what it is in the docs)."""
    from river import anomaly, compose, linear_model, preprocessing

    from models import FeedbackLearner, ScaledHalfSpaceTrees, StreamingECOD

    return {
        "hst": lambda: Detector(ScaledHalfSpaceTrees(n_trees=10, height=8, window_size=HST_WINDOW, seed=seed,
                                                     features=features)),
        "ecod": lambda: Detector(StreamingECOD(seed=seed)),
        "feedback": lambda: Classifier(FeedbackLearner(min_each=5, seed=seed)),
        "river_hst": lambda: Detector(compose.Pipeline(
            preprocessing.MinMaxScaler(),
            anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=HST_WINDOW, seed=seed)), drop_nan=True),
        "river_lr": lambda: Classifier(compose.Pipeline(
            preprocessing.StandardScaler(), linear_model.LogisticRegression()), drop_nan=True),
    }


MODEL_NOTES = {
    "hst": "ours: ScaledHalfSpaceTrees (signed log1p, min-max, declared feature space; unsupervised)",
    "ecod": "ours: StreamingECOD (both tails as published; unsupervised)",
    "feedback": "ours: FeedbackLearner (supervised, labels after the delay)",
    "river_hst": "River: MinMaxScaler | HalfSpaceTrees (reference; unsupervised)",
    "river_lr": "River: StandardScaler | LogisticRegression (reference; supervised, same delay)",
}


Replay = tuple[list[int], dict[str, list[float]], dict[str, float], dict[str, list[str | None]]]


def replay(table: Table, models: dict[str, Callable[[], Scorer]], *, seed: int, label_delay: int,
           progress: bool = True, desc: str = "replay") -> Replay:
    """Prequential replay in an order shuffled with ``seed``: (labels, scores per model,
    seconds per model, per explaining model the top contributing feature of each row).
    A supervised model learns row ``i`` after row ``i + label_delay`` is scored."""
    from tqdm import tqdm

    order = list(range(len(table.rows)))
    random.Random(seed).shuffle(order)
    built = {name: make() for name, make in models.items()}
    scores: dict[str, list[float]] = {name: [] for name in built}
    seconds = dict.fromkeys(built, 0.0)
    explains = {name: m.explain for name, m in built.items() if getattr(getattr(m, "model", None),
                                                                         "contributions_one", None) is not None
                and isinstance(m, Detector)}
    reasons: dict[str, list[str | None]] = {name: [] for name in explains}
    pending: deque[tuple[dict[str, float], int]] = deque()
    labels: list[int] = []
    clock = time.perf_counter
    for r in tqdm(order, desc=desc, unit=" rows", file=sys.stderr, disable=not progress, mininterval=1.0):
        x, y = table.rows[r], table.labels[r]
        labels.append(y)
        pending.append((x, y))
        ready = pending.popleft() if len(pending) > label_delay else None
        for name, model in built.items():
            start = clock()
            scores[name].append(model.score(x))
            seconds[name] += clock() - start
            if name in explains:
                reasons[name].append(explains[name](x))
            start = clock()
            if not model.supervised:
                model.learn(x, None)
            elif ready is not None:
                model.learn(*ready)
            seconds[name] += clock() - start
    return labels, scores, seconds, reasons


def top_reasons(labels: list[int], scores: list[float], reasons: list[str | None],
                share: float = 0.05) -> dict[str, Any]:
    """Among the ``share`` highest-scored rows: how many, their fraud share, and the features
    named most often as the top contribution (what a model alert's reason would name)."""
    n = max(1, round(share * len(scores)))
    top = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:n]
    counts: dict[str, int] = {}
    for i in top:
        feature = reasons[i]
        if feature is not None:
            counts[feature] = counts.get(feature, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return {"rows": n, "fraud_share": round(sum(labels[i] for i in top) / n, 4),
            "features": [[feature, count] for feature, count in ranked]}


def _aucs(labels: list[int], scores: list[float]) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"roc_auc": round(float(roc_auc_score(labels, scores)), 4),
            "pr_auc": round(float(average_precision_score(labels, scores)), 4)}


def evaluate(table: Table, *, seed: int = 0, label_delay: int = 0, progress: bool = True,
             models: dict[str, Callable[[], Scorer]] | None = None,
             ) -> tuple[dict[str, Any], list[int], dict[str, list[float]]]:
    """Metrics of every model on ``table`` (see ``replay``), the labels and the scores."""
    factories = models if models is not None else default_models(table.features, seed)
    labels, scores, seconds, reasons = replay(table, factories, seed=seed, label_delay=label_delay,
                                              progress=progress)
    per_model = {name: {**_aucs(labels, s), "us_per_row": round(1e6 * seconds[name] / len(labels), 1),
                        "what": MODEL_NOTES.get(name, name)} for name, s in scores.items()}
    for name, named in reasons.items():
        per_model[name]["top_reasons"] = top_reasons(labels, scores[name], named)
    metrics: dict[str, Any] = {
        "rows": len(labels), "fraud": sum(labels), "fraud_share": round(sum(labels) / len(labels), 4),
        "features": len(table.features), "missing_cells": table.missing_cells,
        "rows_with_missing": sum(1 for row in table.rows if any(math.isnan(v) for v in row.values())),
        "seed": seed, "label_delay": label_delay, "hst_window": HST_WINDOW,
        "skipped_columns": table.skipped_columns, "non_numeric_cells": table.non_numeric_cells,
        "skipped_rows": table.skipped_rows, "models": per_model,
    }
    return metrics, labels, scores


def _plots(out: Path, labels: list[int], scores: dict[str, list[float]], metrics: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    paths = []
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(labels, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {metrics['models'][name]['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, prequential scores")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    paths.append(out / "roc.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, s in scores.items():
        precision, recall, _ = precision_recall_curve(labels, s)
        ax.plot(recall, precision, label=f"{name} (AP {metrics['models'][name]['pr_auc']:.3f})")
    ax.axhline(metrics["fraud_share"], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision / recall, prequential scores")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    paths.append(out / "pr.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_report(out: Path, source: str, metrics: dict[str, Any], labels: list[int],
                 scores: dict[str, list[float]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    images = _plots(out, labels, scores, metrics)
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{m['roc_auc']:.4f}</td><td>{m['pr_auc']:.4f}</td>"
                   f"<td>{m['us_per_row']}</td><td>{esc(m['what'])}</td></tr>" for name, m in metrics["models"].items())
    skipped = "".join(f"<li>{esc(c)}: {esc(r)}</li>" for c, r in metrics["skipped_columns"].items()) or "<li>none</li>"
    explained = "".join(
        f"<tr><td>{esc(name)}</td><td>{m['top_reasons']['rows']}</td>"
        f"<td>{100 * m['top_reasons']['fraud_share']:.1f} %</td><td>"
        + ", ".join(f"{esc(f)} ({c})" for f, c in m["top_reasons"]["features"]) + "</td></tr>"
        for name, m in metrics["models"].items() if "top_reasons" in m)
    cells = "".join(f"<li>{esc(c)}: {n} text cells read as missing</li>"
                    for c, n in metrics["non_numeric_cells"].items())
    figures = "".join(f'<figure><img alt="{esc(p.stem)}" src="data:image/png;base64,'
                      f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{esc(p.name)}</figcaption></figure>'
                      for p in images)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fraudradar evaluate-table: {esc(source)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
figure{{display:inline-block;margin:0 1em 1em 0}}</style>
</head><body>
<h1>evaluate-table: {esc(source)}</h1>
<p>{metrics['rows']} rows ({metrics['fraud']} fraud, {100 * metrics['fraud_share']:.1f} %), {metrics['features']}
feature columns, {metrics['rows_with_missing']} rows with empty fields ({metrics['missing_cells']} cells).
Replayed in an order shuffled with seed {metrics['seed']}, prequentially (each row scored before it is learned);
labels reach the supervised models {metrics['label_delay']} rows late. Ids are not written.</p>
<table><tr><th>model</th><th>ROC AUC</th><th>PR AUC (AP)</th><th>µs / row</th><th>what</th></tr>{rows}</table>
<h2>Curves</h2>{figures}
<h2>What the detectors' top 5 % name</h2>
<p>Per detector, its 5 % highest-scored rows, their fraud share, and the features its per-feature
contributions named most often as the main reason (<code>contributions_one</code>).</p>
<table><tr><th>model</th><th>rows</th><th>fraud</th><th>top reason: feature (rows)</th></tr>{explained}</table>
<h2>Columns left out</h2><ul>{skipped}</ul>{f"<ul>{cells}</ul>" if cells else ""}
{"<p>Rows skipped: " + esc(json.dumps(metrics["skipped_rows"])) + "</p>" if metrics["skipped_rows"] else ""}
</body></html>
"""
    (out / "report.html").write_text(page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar evaluate-table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", type=Path, nargs="?", help="the labelled CSV table")
    parser.add_argument("--label", help="the label column (0 = normal, anything else = fraud)")
    parser.add_argument("--id", dest="id_column", help="an id column: never a feature, never written")
    parser.add_argument("--seed", type=int, default=0, help="shuffle (and model) seed")
    parser.add_argument("--label-delay", type=int, default=0, metavar="ROWS",
                        help="rows between a row's score and its label reaching the supervised models")
    parser.add_argument("--out", type=Path, default=Path("evaluate-table"), help="output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--make-sample", type=Path, metavar="CSV",
                        help="write a generated hard table (services/devtools/simulator/hard_table.py) and exit")
    parser.add_argument("--rows", type=int, default=6000, help="rows of --make-sample")
    args = parser.parse_args(argv)
    prog = "fraudradar evaluate-table"
    if args.make_sample is not None:
        from services.devtools.simulator.hard_table import write_hard_table

        if args.rows < 1:
            print(f"{prog}: --rows must be at least 1", file=sys.stderr)
            return 2
        n, fraud = write_hard_table(args.make_sample, rows=args.rows, seed=args.seed)
        print(f"wrote {args.make_sample}: {n} rows, {fraud} fraud; label column is_fraud, id column subscriber_id")
        return 0
    if args.table is None or args.label is None:
        print(f"{prog}: a TABLE and --label are required (or --make-sample CSV)", file=sys.stderr)
        return 2
    if args.label_delay < 0:
        print(f"{prog}: --label-delay must be >= 0", file=sys.stderr)
        return 2
    try:
        table = read_table(args.table, args.label, args.id_column)
    except TableError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    for column, reason in table.skipped_columns.items():
        print(f"{prog}: skipping column {column!r}: {reason}", file=sys.stderr)
    for column, n in table.non_numeric_cells.items():
        print(f"{prog}: column {column!r}: {n} text cells read as missing", file=sys.stderr)
    if table.skipped_rows:
        print(f"{prog}: rows skipped: {table.skipped_rows}", file=sys.stderr)
    started = time.perf_counter()
    metrics, labels, scores = evaluate(table, seed=args.seed, label_delay=args.label_delay, progress=not args.quiet)
    metrics["table"] = args.table.name
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    write_report(args.out, args.table.name, metrics, labels, scores)
    width = max(len(n) for n in metrics["models"])
    for name, m in metrics["models"].items():
        print(f"{name:<{width}}  ROC AUC {m['roc_auc']:.4f}  PR AUC {m['pr_auc']:.4f}")
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
