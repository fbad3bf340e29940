"""Models only: how well each model ranks fraud, side by side with River's, without any rule.

Two benches in one script.

**Tables** (the default): per-subscriber aggregate tables with the hard properties
(``services/devtools/simulator/table/hard.py``: 55 heavy-tailed call/SMS/usage features, signed deltas,
~20 % of rows with empty fields, ~30 % fraud that is lower than the population on most
features), one per seed, each replayed prequentially as ``fraudradar evaluate-table`` does
(shuffled, score then learn, labels to the supervised models after ``--label-delays`` rows):
ROC AUC and PR AUC of our ``ScaledHalfSpaceTrees``, ``StreamingECOD`` and ``FeedbackLearner``
next to River's ``HalfSpaceTrees`` (behind its ``MinMaxScaler``) and River's ``StandardScaler``
→ ``LogisticRegression``, per table and delay, with the mean and the worst table per model.

    python bench/detectors.py [--seeds 0,1,2] [--rows 6000] [--label-delays 0,500] [--json bench/results/detectors.json]

**Simulated events** (``--events``):

    python bench/detectors.py --events D7/events.jsonl --truth D7/truth.jsonl --json bench/results/detectors-7.json

The simulated events go through ingest and one ``PartitionScorer`` whose policy keeps every
setting of the shipped one except: no rules, no do-not-originate list, model points capped
at 0 and no model-only alerts (``models.alone: false``), so nothing is ever flagged and every
detector learns the same unfiltered sample. All the detectors named by ``--detectors`` run
side by side in that engine, so they score exactly the same points (same gating by activity,
same re-scoring moments). Per entity, the maximum
calibrated percentile a detector gave it is its score (never scored: 0). Written per detector:
ROC AUC and PR AUC over all entities (truth vs everything else), and per scenario (that
scenario's entities vs the non-fraud ones). Not a test; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import average_precision_score, roc_auc_score
from tqdm import tqdm

from services.devtools.simulator.backtest import backtest_pseudonymizer, load_truth
from services.ingest.pipeline import IngestLimits, IngestPipeline
from services.ingest.transform import Transformer
from services.scorer.partition import PartitionScorer
from services.scorer.policy import Policy


def _policy(detectors: list[str], min_activity: float | None) -> Path:
    spec = yaml.safe_load(Path(__file__).resolve().parents[1].joinpath("services/scorer/policy.yaml").read_text())
    spec["rules"] = {"number": [], "device": []}
    spec["do_not_originate"] = []
    spec["models"]["detectors"] = detectors
    spec["models"]["max_points"] = 0
    spec["models"]["alone"] = False          # no model-only alert (MODEL_RARE) either
    if min_activity is not None:
        spec["models"]["min_activity"] = min_activity
    path = Path(tempfile.mkdtemp(prefix="detectors-")) / "policy.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _auc(labels: list[int], scores: list[float]) -> tuple[float | None, float | None]:
    if len(set(labels)) < 2:
        return None, None
    return round(float(roc_auc_score(labels, scores)), 4), round(float(average_precision_score(labels, scores)), 4)


def tables_main(args: argparse.Namespace) -> int:
    """The tables bench (see the module docstring)."""
    import time

    from services.devtools.simulator.table.hard import write_hard_table
    from services.devtools.simulator.table.prequential import evaluate
    from services.devtools.simulator.table.reader import read_table
    from services.devtools.simulator.table.scorers import default_models

    seeds = [int(s) for s in args.seeds.split(",")]
    delays = [int(d) for d in args.label_delays.split(",")]
    runs: list[dict[str, object]] = []
    workdir = Path(tempfile.mkdtemp(prefix="hard-tables-"))
    for seed in seeds:
        path = workdir / f"hard-{seed}.csv"
        write_hard_table(path, rows=args.rows, seed=seed)
        table = read_table(path, "is_fraud", "subscriber_id")
        for delay in delays:
            print(f"table seed {seed} ({args.rows} rows), label delay {delay}", file=sys.stderr)
            started = time.perf_counter()
            metrics, _, _ = evaluate(table, seed=seed, label_delay=delay, models=default_models(table.features, seed))
            models = {name: {k: m[k] for k in ("roc_auc", "pr_auc", "us_per_row")}
                      for name, m in metrics["models"].items()}
            runs.append({"table_seed": seed, "label_delay": delay, "rows": metrics["rows"],
                         "fraud_share": metrics["fraud_share"], "rows_with_missing": metrics["rows_with_missing"],
                         "seconds": round(time.perf_counter() - started, 1), "models": models})
            print("  " + "  ".join(f"{n} {m['roc_auc']:.3f}/{m['pr_auc']:.3f}" for n, m in models.items()),
                  file=sys.stderr)
    names = list(runs[0]["models"])  # type: ignore[call-overload]
    summary: dict[str, object] = {}
    for delay in delays:
        of = [r for r in runs if r["label_delay"] == delay]
        summary[f"label_delay_{delay}"] = {
            name: {"roc_auc_mean": round(sum(r["models"][name]["roc_auc"] for r in of) / len(of), 4),  # type: ignore[index]
                   "roc_auc_worst": min(r["models"][name]["roc_auc"] for r in of),  # type: ignore[index]
                   "pr_auc_mean": round(sum(r["models"][name]["pr_auc"] for r in of) / len(of), 4),  # type: ignore[index]
                   "pr_auc_worst": min(r["models"][name]["pr_auc"] for r in of)}  # type: ignore[index]
            for name in names}
    feedback_vs_river = all(r["models"]["feedback"][k] >= r["models"]["river_lr"][k]  # type: ignore[index]
                            for r in runs for k in ("roc_auc", "pr_auc"))
    result = {"bench": "hard tables, prequential", "rows": args.rows, "table_seeds": seeds, "label_delays": delays,
              "hst_window": 250, "summary": summary, "feedback_at_least_river_lr_in_every_run": feedback_vs_river,
              "runs": runs,
              "command": "python bench/detectors.py " + " ".join(sys.argv[1:])}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"summary": summary, "feedback_at_least_river_lr_in_every_run": feedback_vs_river}, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=Path, help="simulated events (the engine bench; needs --truth)")
    parser.add_argument("--truth", type=Path)
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the results (tables: bench/results/detectors.json by default)")
    parser.add_argument("--seeds", default="0,1,2", help="tables: one generated table per seed")
    parser.add_argument("--rows", type=int, default=6000, help="tables: rows per table")
    parser.add_argument("--label-delays", default="0,500", help="tables: label delays (rows) to run")
    parser.add_argument("--detectors", default="hst,burst,ecod")
    parser.add_argument("--dump", type=Path, help="also write per-entity scores and the features at the max")
    parser.add_argument("--after-h", type=float, default=0.0,
                        help="only scores from views this many hours after the first event, and only truth "
                             "entities starting after that (every entity then has history: no cold start)")
    parser.add_argument("--min-activity", type=float, default=None,
                        help="models.min_activity override (default: the shipped policy's)")
    args = parser.parse_args()
    if args.events is None:
        args.json = args.json or Path(__file__).resolve().parent / "results" / "detectors.json"
        return tables_main(args)
    if args.truth is None or args.json is None:
        parser.error("--events needs --truth and --json")
    detectors = args.detectors.split(",")
    pseudo = backtest_pseudonymizer()
    truth = load_truth(args.truth, pseudo)
    engine = PartitionScorer(Policy.load(pseudo, _policy(detectors, args.min_activity)), pseudo)
    pipeline = IngestPipeline(Transformer(pseudo, None, "NL"), IngestLimits())
    best: dict[str, dict[tuple[str, str], float]] = {d: {} for d in detectors}
    at_best: dict[str, dict[tuple[str, str], dict[str, float]]] = {d: {} for d in detectors}
    seen: set[tuple[str, str]] = set()
    first_ms: int | None = None
    with args.events.open("rb") as fh:
        for line in tqdm(fh, desc="replay", unit=" events", file=sys.stderr):
            ingested = pipeline.process(line.rstrip(b"\n"), now_ms=None)
            if ingested.reason is not None:
                continue
            for view in ingested.views:
                if first_ms is None:
                    first_ms = view.occurred_ms
                out = engine.process(view)
                if view.occurred_ms < first_ms + args.after_h * 3_600_000:
                    continue
                key = (out.entity_type, out.entity)
                seen.add(key)
                for name, percentile in out.model_scores.items():
                    if percentile > best[name].get(key, 0.0):
                        best[name][key] = percentile
                        if args.dump:
                            at_best[name][key] = engine.features_of(out.entity_type, out.entity) or {}
    cutoff = (first_ms or 0) + args.after_h * 3_600_000
    label = {t.key: t.scenario for t in truth if t.start_ms >= cutoff}
    early = {t.key for t in truth if t.start_ms < cutoff}
    seen -= early
    entities = sorted((seen | set(label)) - early)
    result: dict[str, object] = {"events": str(args.events), "entities": len(entities), "fraud": len(label),
                                 "after_h": args.after_h,
                                 "min_activity": engine.policy.models.min_activity, "detectors": {}}
    for name in detectors:
        scores = [best[name].get(k, 0.0) for k in entities]
        roc, pr = _auc([int(k in label) for k in entities], scores)
        per: dict[str, object] = {}
        for scenario in sorted(set(label.values())):
            keep = [i for i, k in enumerate(entities) if label.get(k) in (None, scenario)]
            per[scenario] = _auc([int(label.get(entities[i]) == scenario) for i in keep], [scores[i] for i in keep])[0]
        # among the entities the models scored at all (the activity gate is the same for every
        # detector): how well each one ranks the candidates it is actually shown
        scored = [i for i, k in enumerate(entities) if any(k in best[d] for d in detectors)]
        roc_s, pr_s = _auc([int(entities[i] in label) for i in scored], [scores[i] for i in scored])
        per_s: dict[str, object] = {}
        for scenario in sorted(set(label.values())):
            keep = [i for i in scored if label.get(entities[i]) in (None, scenario)]
            per_s[scenario] = _auc([int(label.get(entities[i]) == scenario) for i in keep],
                                   [scores[i] for i in keep])[0]
        result["detectors"][name] = {"roc_auc": roc, "pr_auc": pr, "scored_entities": len(best[name]),  # type: ignore[index]
                                     "roc_auc_per_scenario": per, "scored_roc_auc": roc_s, "scored_pr_auc": pr_s,
                                     "scored_roc_auc_per_scenario": per_s}
    if args.dump:
        rows = [{"entity_type": k[0], "entity": k[1], "scenario": label.get(k),
                 **{f"score_{d}": best[d].get(k, 0.0) for d in detectors},
                 **{f"features_{d}": at_best[d].get(k) for d in detectors}} for k in entities
                if any(k in best[d] for d in detectors)]
        args.dump.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
