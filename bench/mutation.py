"""Mutation testing of the core modules (``make mutation``): do the fast unit tests catch a change?

Each group below is one mutmut 3 run in its own scratch copy of the repository
(``.cache/mutation/<group>``), mutating the group's modules and running only the group's unit tests
(no broker: ``-m "not kafka"``), niced so the shared cores stay usable. A surviving mutant is either
killed by a test or listed in ``bench/mutation_triage.yaml`` as equivalent (with why, and the
mutated line, so a stale entry is noticed). Writes ``bench/results/mutation.json`` and
``docs/mutation.md``; exits 1 when fewer than ``--target`` of the non-equivalent mutants are killed.

    python bench/mutation.py [--groups identifiers,policy] [--jobs 2]
"""

from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache" / "mutation"
TRIAGE = ROOT / "bench" / "mutation_triage.yaml"


@dataclass(frozen=True)
class Group:
    name: str
    what: str
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    only: tuple[str, ...] = ("*",)        # mutant name patterns counted (default: all of the modules)
    pytest_args: tuple[str, ...] = ()     # extra pytest arguments (e.g. leaving out slow fuzz tests)


GROUPS = [      # roughly cheapest first, so a run cut short still reports most groups
    Group("limits", "rate limits, quotas and lookup budgets", ("services/api/limits.py",),
          ("tests/api/test_limits.py",)),
    Group("alert_ids", "deterministic alert ids", ("services/scorer/verdicts.py", "services/scorer/links.py"),
          ("tests/scorer/test_engine.py", "tests/scorer/test_links.py", "tests/scorer/test_alert_fields.py"),
          ("*ǁVerdictsǁalert__mutmut_*", "*ǁLinksǁ_alert__mutmut_*")),
    Group("webhooks", "webhook signing and the SSRF guard", ("services/api/webhooks.py",),
          ("tests/api/test_webhooks_feed.py",),
          ("*.x_sign__mutmut_*", "*ǁUrlPolicyǁ*", "*.x_owner_of__mutmut_*")),
    Group("identifiers", "number/IMEI/IMSI normalisation, API identifier checks",
          ("services/common/normalise.py", "services/api/identifiers.py"),
          ("tests/common/test_normalise.py",)),
    Group("pseudonyms", "keyed pseudonyms and sealed disclosure",
          ("services/common/pseudonym.py",), ("tests/common/test_pseudonym.py",)),
    Group("tokens", "access tokens", ("services/api/tokens.py",),
          ("tests/api/test_tokens.py", "tests/api/test_tokens_checks.py")),
    Group("policy", "policy loading, levels and rule scoring",
          ("services/scorer/policy.py", "services/scorer/scoring.py"),
          ("tests/scorer/test_policy.py", "tests/scorer/test_scoring.py", "tests/scorer/test_thresholds.py",
           "tests/scorer/test_sender_classes.py", "tests/scorer/test_takeover.py",
           "tests/scorer/test_forwarding_takeover.py", "tests/scorer/test_budget.py", "tests/scorer/test_paced.py")),
    # a mutant that loops forever in the piece parser fails its test within a minute (pytest-timeout)
    # instead of running to mutmut's CPU limit
    Group("changelog", "the scorer's state changelog", ("services/scorer/state/changelog.py",),
          ("tests/scorer/state/test_changelog.py", "tests/scorer/state/test_changelog_format.py"),
          pytest_args=("--timeout", "60")),
    # the two hypothesis fuzz tests (800 examples, "never crashes") are left out: they check that
    # nothing raises, not what the decoder answers, and would take most of the run
    Group("decoder", "the ingest decoder", ("services/ingest/decode.py",),
          ("tests/ingest/test_decode.py", "tests/ingest/test_hostile_decode.py", "tests/ingest/test_decode_answers.py"),
          pytest_args=("-k", "not arbitrary")),
]


STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout", -24: "timeout",
          24: "timeout", 152: "timeout", 255: "timeout", 37: "killed"}


def _pyproject(group: Group) -> str:
    """The repository's pytest settings plus this group's mutmut settings."""
    text = (ROOT / "pyproject.toml").read_text()
    pytest_part = text[text.index("[tool.pytest.ini_options]"):]
    pytest_part = pytest_part.split("\n[", 1)[0] + "\n"
    pytest_part = re.sub(r'\naddopts = .*\n', "\n", pytest_part)       # no coverage inside mutmut
    mutmut = {
        "source_paths": list(group.modules),
        "pytest_add_cli_args_test_selection": list(group.tests),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-m", "not kafka", "-x", "-q", *group.pytest_args],
        "also_copy": ["services", "models", "tests", "reliability"],
    }
    lines = ["[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in mutmut.items()]
    return pytest_part + "\n" + "\n".join(lines) + "\n"


def _prepare(group: Group) -> Path:
    missing = [p for p in group.modules + group.tests if not (ROOT / p).exists()]
    if missing:
        raise SystemExit(f"mutation group {group.name}: missing {missing} (moved? update bench/mutation.py)")
    work = WORK / group.name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")
    for part in ("services", "models", "tests", "reliability"):
        shutil.copytree(ROOT / part, work / part, ignore=ignore)
    (work / "pyproject.toml").write_text(_pyproject(group))
    return work


def _mutmut(work: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("mutmut"))
    env = {**os.environ, "PYTHONPATH": str(work), "PYTHONWARNINGS": "ignore"}
    return subprocess.run(["nice", "-n", "10", exe, *args], cwd=work, env=env, text=True, check=False,
                          capture_output=capture)


def _results(work: Path, group: Group) -> dict[str, str]:
    out: dict[str, str] = {}
    for meta in (work / "mutants").rglob("*.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in group.only):
                out[name] = STATUS.get(code, "suspicious") if code is not None else "not checked"
    return dict(sorted(out.items()))


def _functions(path: Path) -> dict[str, str]:
    """Source of every function in a mutmut-generated module (the ``..._mutmut_orig`` and
    ``..._mutmut_N`` twins), by name."""
    text = path.read_text()
    lines = text.splitlines()
    out: dict[str, str] = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name:
            out[node.name] = "\n".join(lines[node.lineno - 1:node.end_lineno]).lstrip()
    return out


def _diff(work: Path, name: str, cache: dict[Path, dict[str, str]]) -> str:
    """The changed lines of one mutant against the original function (no `mutmut show`: one
    process per mutant took seconds each)."""
    module, _, function = name.rpartition(".")
    path = work / "mutants" / (module.replace(".", "/") + ".py")
    if path not in cache:
        cache[path] = _functions(path)
    functions = cache[path]
    base = function.rsplit("__mutmut_", 1)[0]
    original = functions.get(base + "__mutmut_orig", "").replace(base + "__mutmut_orig", base, 1).splitlines()
    mutated = functions.get(function, "").replace(function, base, 1).splitlines()
    return "\n".join(line.rstrip() for line in difflib.unified_diff(original, mutated, lineterm="", n=0)
                     if line[:1] in "+-" and not line.startswith(("+++", "---")))


def run_group(group: Group, triage: dict[str, Any], jobs: int, *, run: bool = True,
              seconds: float = 0.0) -> dict[str, Any]:
    """Mutate and test one group (``run=False``: only re-read the results of the last run, e.g.
    after triaging, keeping its ``seconds``)."""
    work = WORK / group.name
    started = time.monotonic()
    print(f"== {group.name}: {', '.join(group.modules)} against {', '.join(group.tests)}", flush=True)
    if run:
        work = _prepare(group)
        patterns = [] if group.only == ("*",) else list(group.only)
        _mutmut(work, "run", "--max-children", str(jobs), *patterns)
    results = _results(work, group)
    cache: dict[Path, dict[str, str]] = {}
    survivors: list[dict[str, str]] = []
    equivalent: list[dict[str, str]] = []
    timed_out: list[dict[str, str]] = []
    for name, status in results.items():
        if status == "killed":
            continue
        if status == "timeout":
            # the tests never passed (the change made them hang): detected, as mutmut's own score counts it
            timed_out.append({"mutant": name, "diff": _diff(work, name, cache)})
            continue
        diff = _diff(work, name, cache)
        entry = triage.get(name)
        mutated = str(entry.get("line", "")).strip() if entry else ""
        # "no tests": dead code no test can reach (triaged like an equivalent mutant)
        matches = bool(mutated) and any(mutated in line for line in diff.splitlines())
        if entry and status in ("survived", "no tests") and matches:
            equivalent.append({"mutant": name, "diff": diff, "why": entry["why"]})
        else:
            survivors.append({"mutant": name, "status": status, "diff": diff})
    killed = sum(1 for s in results.values() if s == "killed") + len(timed_out)
    counted = len(results) - len(equivalent)
    return {"group": group.name, "what": group.what, "modules": list(group.modules), "tests": list(group.tests),
            "mutants": len(results), "killed": killed, "timed_out": len(timed_out), "equivalent": len(equivalent),
            "not_killed": len(survivors), "score": round(killed / counted, 4) if counted else 1.0,
            "seconds": round(time.monotonic() - started, 1) if run else seconds, "survivors": survivors,
            "equivalents": equivalent, "timeouts": timed_out}


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Mutation testing of the core modules",
        "",
        "`make mutation` (`bench/mutation.py`, mutmut " + doc["mutmut"] + ") changes the core modules one small "
        "step at a time (a flipped comparison, a changed constant, a dropped argument...) and runs each "
        "group's fast unit tests (no broker) against every change. A mutant the tests do not notice "
        "either gets a test that kills it or is triaged as equivalent (the program behaves the same) "
        "in `bench/mutation_triage.yaml`. Raw data: `bench/results/mutation.json`. Not part of "
        "`make test` (it takes long and runs niced).",
        "",
        f"Target: at least {doc['target']:.0%} of the non-equivalent mutants killed in every group. "
        f"Result: **{'met' if doc['target_met'] else 'NOT met'}** (overall "
        f"{doc['overall']['score']:.1%}; groups run: {', '.join(g['group'] for g in doc['groups'])}).",
        "",
        *([f"Not run yet (no result in this report): {', '.join(doc['not_run'])}; "
           f"`make mutation GROUPS={','.join(doc['not_run'])}` runs them.", ""] if doc["not_run"] else []),
        "Score = killed / (mutants - equivalent). \"killed\" includes the mutants that made the tests hang "
        "(\"timed out\": the tests never passed; mutmut's own score counts them the same way); \"not "
        "killed\" counts survivors and mutants in code the group's tests never reach (\"no tests\").",
        "",
        "## Measured",
        "",
        "| group | what | mutants | killed | of which timed out | equivalent | not killed | score | time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in doc["groups"]:
        lines.append(f"| {g['group']} | {g['what']} | {g['mutants']} | {g['killed']} | {g.get('timed_out', 0)} | "
                     f"{g['equivalent']} | {g['not_killed']} | {g['score']:.1%} | {g['seconds']:.0f} |")
    o = doc["overall"]
    lines.append(f"| **all** | | {o['mutants']} | {o['killed']} | {o['timed_out']} | {o['equivalent']} | "
                 f"{o['not_killed']} | {o['score']:.1%} | {o['seconds']:.0f} |")
    lines += ["", f"Command: `{doc['command']}` on {doc['host_cores']} shared cores.", ""]
    lines += ["## Not killed", ""]
    any_left = False
    for g in doc["groups"]:
        for s in g["survivors"]:
            any_left = True
            diff = ["  " + d for d in s["diff"].splitlines()]
            lines += [f"* `{s['mutant']}` ({s['status']})", "", "  ```diff", *diff, "  ```", ""]
    if not any_left:
        lines += ["None.", ""]
    lines += ["## Timed out (counted as killed)", ""]
    for g in doc["groups"]:
        for t in g.get("timeouts", []):
            lines += [f"* `{t['mutant']}`", "", "  ```diff", *("  " + d for d in t["diff"].splitlines()), "  ```", ""]
    lines += ["## Equivalent (triaged)", ""]
    for g in doc["groups"]:
        for e in g["equivalents"]:
            lines += [f"* `{e['mutant']}`: {e['why']}", "", "  ```diff", *("  " + d for d in e["diff"].splitlines()),
                      "  ```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", default=",".join(g.name for g in GROUPS),
                        help="comma-separated group names, run in this order")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run in parallel")
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--no-run", action="store_true",
                        help="re-read the last run's results in .cache/mutation (after editing the triage)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "mutation.json")
    parser.add_argument("--md", type=Path, default=ROOT / "docs" / "mutation.md")
    args = parser.parse_args(argv)
    wanted = args.groups.split(",")
    unknown = set(wanted) - {g.name for g in GROUPS}
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; known: {[g.name for g in GROUPS]}")
    triage = yaml.safe_load(TRIAGE.read_text()) or {}
    previous = json.loads(args.json.read_text()) if args.json.exists() else {"groups": []}
    kept = {g["group"]: g for g in previous.get("groups", []) if g["group"] not in wanted}
    previous_seconds = {g["group"]: float(g["seconds"]) for g in previous.get("groups", [])}
    by_name = {g.name: g for g in GROUPS}
    for group in (by_name[name] for name in wanted):          # in the order asked for
        result = run_group(group, triage, args.jobs, run=not args.no_run,
                           seconds=previous_seconds.get(group.name, 0.0))
        kept[group.name] = result
        _write(args, kept)
        print(f"   {group.name}: {result['killed']}/{result['mutants']} killed, {result['equivalent']} "
              f"equivalent, {result['not_killed']} not killed ({result['score']:.1%}) in {result['seconds']:.0f} s",
              flush=True)
    met = _write(args, kept)
    return 0 if met else 1


def _write(args: argparse.Namespace, kept: dict[str, dict[str, Any]]) -> bool:
    """Write the JSON and the markdown report of the groups run so far; True if the target is met."""
    groups = [kept[g.name] for g in GROUPS if g.name in kept]
    keys = ("mutants", "killed", "timed_out", "equivalent", "not_killed")
    total = {k: sum(g.get(k, 0) for g in groups) for k in keys}
    counted = total["mutants"] - total["equivalent"]
    total["score"] = round(total["killed"] / counted, 4) if counted else 1.0
    total["seconds"] = round(sum(g["seconds"] for g in groups), 1)
    version = subprocess.run([str(Path(sys.executable).with_name("mutmut")), "--version"], capture_output=True,
                             text=True, check=False).stdout.split()[-1:]
    doc = {"mutmut": version[0] if version else "?", "target": args.target,
           "target_met": all(g["score"] >= args.target for g in groups), "overall": total,
           "command": "make mutation", "host_cores": os.cpu_count(), "groups": groups,
           "not_run": [g.name for g in GROUPS if g.name not in kept]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    args.md.write_text(_markdown(doc))
    print(f"mutation score {total['score']:.1%} ({total['killed']} killed of {counted} non-equivalent); "
          f"report in {args.json.relative_to(ROOT)} and {args.md.relative_to(ROOT)}", flush=True)
    met: bool = doc["target_met"]
    return met


if __name__ == "__main__":
    sys.exit(main())
