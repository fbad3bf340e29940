"""What the demo prints: lines on stderr, log tails, paths and the injected-vs-flagged table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, indented (or a note that there is no log)."""
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "    (no log)"


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (what a user would type)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_table(metrics: dict[str, Any], min_level: str, title: str) -> None:
    """Injected vs flagged per scenario (the backtest's metrics document shape)."""
    rows = [("scenario", "injected", "flagged", "recall", "time to detect (median)", "p90")]
    for name, s in metrics.get("scenarios", {}).items():
        ttd, p90 = s.get("ttd_median_s"), s.get("ttd_p90_s")
        rows.append((name, str(s["entities"]), str(s["detected"]), f"{s['recall']:.0%}",
                     "-" if ttd is None else f"{ttd:.0f} s", "-" if p90 is None else f"{p90:.0f} s"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    say(f"\n{title} (entities; an alert at level {min_level} or above counts)")
    for i, row in enumerate(rows):
        say("  " + "  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            say("  " + "  ".join("-" * w for w in widths))
    overall = metrics.get("overall", {})
    if overall:
        say(f"  overall: precision {overall['precision']:.0%}, recall {overall['recall']:.0%}")
