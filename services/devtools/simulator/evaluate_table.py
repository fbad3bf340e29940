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
import sys
import time
from pathlib import Path

from services.devtools.simulator.table.output import write_report
from services.devtools.simulator.table.prequential import evaluate
from services.devtools.simulator.table.reader import TableError, read_table


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
                        help="write a generated hard table (services/devtools/simulator/table/hard.py) and exit")
    parser.add_argument("--rows", type=int, default=6000, help="rows of --make-sample")
    args = parser.parse_args(argv)
    prog = "fraudradar evaluate-table"
    if args.make_sample is not None:
        from services.devtools.simulator.table.hard import write_hard_table

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
