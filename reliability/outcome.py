"""One scenario's verdict, and the files that publish them (JSON and a short Markdown report)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Outcome:
    passed: bool
    figure: Any
    detail: str

    @classmethod
    def not_run(cls, why: str) -> Outcome:
        return cls(False, None, f"not run: {why}")

    @classmethod
    def crashed(cls, exc: BaseException) -> Outcome:
        tail = "".join(traceback.format_exception(exc)[-3:]).strip().replace("\n", " | ")
        return cls(False, None, f"harness error: {type(exc).__name__}: {exc} ({tail[-600:]})")


def run_steps(steps: Iterable[tuple[str, Callable[[], Outcome]]]) -> dict[str, Outcome]:
    """Each step's outcome by its check name, in order; a step that raises is ``crashed`` and
    the next one still runs."""
    out: dict[str, Outcome] = {}
    for name, step in steps:
        try:
            out[name] = step()
        except Exception as exc:
            out[name] = Outcome.crashed(exc)
    return out


def write_results(results: dict[str, Outcome], path: Path, meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {name: asdict(outcome) for name, outcome in results.items()}
    path.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    (path.with_suffix(".meta.json")).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    report = path.with_name(path.stem + ".md")
    report.write_text(render_report(results, meta))


def render_report(results: dict[str, Outcome], meta: dict[str, Any]) -> str:
    passed = sum(o.passed for o in results.values())
    lines = [
        "# fraudradar reliability report",
        "",
        f"{datetime.now(UTC).isoformat(timespec='seconds')} · {passed}/{len(results)} passed · "
        f"scale: {meta.get('params')} · wall time {meta.get('elapsed_s', 0):.0f} s"
        + (f" · stress: {meta['stress']['busy_processes']} busy processes on {meta['stress']['cpus']} CPUs"
           if (meta.get('stress') or {}).get('busy_processes') else ""),
        "",
        "| check | verdict | figure | detail |",
        "|---|---|---|---|",
    ]
    for name, o in results.items():
        verdict = "PASS" if o.passed else ("not run" if o.detail.startswith("not run") else "FAIL")
        figure = json.dumps(o.figure, default=str) if o.figure is not None else ""
        lines.append(f"| `{name}` | {verdict} | `{figure[:300]}` | {o.detail.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
