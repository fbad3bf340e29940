"""Per-package coverage floors of ``make test``: prints the table, exits 1 below a floor.

Reads the coverage data ``pytest --cov`` wrote (``[tool.coverage.run]`` in pyproject.toml, the
test process and the services it started as subprocesses, combined) and the floors in
``[tool.fraudradar.coverage_floors]`` (package directory -> minimum percent of statements). Every
``.py`` file under a package counts, imported or not, so a module no test loads pulls its package
down instead of vanishing from the report.

    python -m tests.support.coverage_floors [--data .cache/coverage/.coverage]
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parents[2]


def floors() -> dict[str, float]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    table: dict[str, float] = doc["tool"]["fraudradar"]["coverage_floors"]
    return table


def package_of(path: Path, packages: list[str]) -> str | None:
    """The most specific configured package a file belongs to."""
    rel = path.relative_to(ROOT).as_posix()
    best = None
    for package in packages:
        if (rel.startswith(package + "/") or rel == package) and (best is None or len(package) > len(best)):
            best = package
    return best


def measure(data_file: Path, packages: list[str]) -> dict[str, tuple[int, int]]:
    """``{package: (statements, missed)}`` over every source file of each package."""
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    totals = {package: (0, 0) for package in packages}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if package_of(path, packages) != package:
                continue
            _, statements, _, missing, _ = cov.analysis2(str(path))
            s, m = totals[package]
            totals[package] = (s + len(statements), m + len(missing))
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".cache" / "coverage" / ".coverage")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"coverage floors: no coverage data at {args.data} (run pytest with --cov)", file=sys.stderr)
        return 2
    wanted = floors()
    totals = measure(args.data, sorted(wanted))
    failed = []
    print(f"\n{'package':<22} {'statements':>10} {'missed':>7} {'covered':>8} {'floor':>6}")
    for package in sorted(wanted):
        statements, missed = totals[package]
        percent = 100.0 * (statements - missed) / statements if statements else 100.0
        below = percent < wanted[package]
        failed += [package] if below else []
        print(f"{package:<22} {statements:>10} {missed:>7} {percent:>7.1f}% {wanted[package]:>5.0f}%"
              + ("  BELOW THE FLOOR" if below else ""))
    all_statements = sum(s for s, _ in totals.values())
    all_missed = sum(m for _, m in totals.values())
    print(f"{'all':<22} {all_statements:>10} {all_missed:>7} "
          f"{100.0 * (all_statements - all_missed) / max(all_statements, 1):>7.1f}%")
    if failed:
        print(f"coverage below the floor in {', '.join(failed)} (floors: pyproject.toml "
              "[tool.fraudradar.coverage_floors])", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
