"""Reading a labelled per-subscriber CSV table for ``fraudradar evaluate-table``.

Input: a CSV with a header. The label column holds numbers (fraud = not 0); a row whose label
is empty is skipped and counted. Feature cells that are empty or ``NA``/``NaN``/``null``/``?``
are missing (the models handle missing as missing). A column with no number at all (a plan
name, a region) is skipped with that reason; text cells in a numeric column are missing and
counted per column. The id column is never a feature and is not written anywhere (it may hold
subscriber numbers).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from services.devtools.simulator.exceptions import SimulatorError

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})


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
    """Parse and check ``path`` (see this module's docstring for the rules)."""
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
