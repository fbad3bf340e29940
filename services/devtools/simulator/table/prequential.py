"""The prequential replay of a table (every row scored first, learned after) and its metrics."""

from __future__ import annotations

import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from services.devtools.simulator.table.reader import Table
from services.devtools.simulator.table.scorers import HST_WINDOW, MODEL_NOTES, Detector, Scorer, default_models

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

