"""What ``fraudradar evaluate-table`` writes: metrics.json and report.html with its curves."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal


def _plots(out: Path, labels: list[int], scores: dict[str, list[float]], metrics: dict[str, Any]) -> list[Path]:
    """roc.png and pr.png: every model's curve, its AUC in the legend, chance as a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    def roc(s: list[float]) -> tuple[Any, Any]:
        fpr, tpr, _ = roc_curve(labels, s)
        return fpr, tpr

    def pr(s: list[float]) -> tuple[Any, Any]:
        precision, recall, _ = precision_recall_curve(labels, s)
        return recall, precision

    Corner = Literal["lower right", "upper right"]
    charts: list[tuple[str, Callable[[list[float]], tuple[Any, Any]], str, str, tuple[str, str], str, Corner]] = [
        ("roc.png", roc, "AUC", "roc_auc", ("false positive rate", "true positive rate"),
         "ROC, prequential scores", "lower right"),
        ("pr.png", pr, "AP", "pr_auc", ("recall", "precision"), "precision / recall, prequential scores",
         "upper right"),
    ]
    paths = []
    for file, curve, short, key, (xlabel, ylabel), title, corner in charts:
        fig, ax = plt.subplots(figsize=(6.5, 5.5))
        for name, s in scores.items():
            ax.plot(*curve(s), label=f"{name} ({short} {metrics['models'][name][key]:.3f})")
        if key == "roc_auc":
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        else:
            ax.axhline(metrics["fraud_share"], color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc=corner, fontsize=8)
        fig.tight_layout()
        paths.append(out / file)
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

