"""``python -m reliability`` (``make reliability``): run the scenarios, write reliability.json.

    python -m reliability                      # full scale: 1M events, 20 kills, ...
    python -m reliability --events 50000 --kills 3 --hostile 10000 --only hostile_input,privacy
    python -m reliability --stress             # the same with the CPUs oversubscribed (reliability.stress)

Starts its own broker (it kills and restarts it), runs every scenario in turn, and always
writes the results, with ``{"passed": false, "figure": null, "detail": "not run: ..."}`` for
what could not run. Exit code 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from reliability.context import Context, Params
from reliability.outcome import Outcome, write_results
from reliability.rig import Rig
from reliability.stress import CpuHog, default_workers
from services.common.logs import SlowClientSteps

log = logging.getLogger("reliability")

# scenario module -> the checks it reports (used for "not run" entries when it cannot run)
SCENARIOS: dict[str, tuple[str, ...]] = {
    "hostile_input": ("hostile_input",),
    "scorer_crashes": ("scorer_crashes", "scorer_freezes"),
    "broker_faults": ("broker_faults",),
    "api": ("api_schemathesis", "api_authorization", "api_enumeration", "api_webhooks", "api_webhook_signature_age"),
    "abuse": ("abuse_watchlist", "abuse_token_lockout", "abuse_unknown_clients", "abuse_feedback", "abuse_streams"),
    "privacy": ("privacy_plaintext", "privacy_audit", "privacy_retention"),
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "reliability.json"


def build_parser() -> argparse.ArgumentParser:
    d = Params()
    p = argparse.ArgumentParser(prog="python -m reliability", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=d.events, help="scorer crash run: simulated events")
    p.add_argument("--kills", type=int, default=d.kills, help="scorer crash run: kill -9 count")
    p.add_argument("--freezes", type=int, default=d.freezes,
                   help="scorer freeze run: SIGSTOPs (past the session) of one of two replicas")
    p.add_argument("--hostile", type=int, default=d.hostile, help="malformed events")
    p.add_argument("--valid", type=int, default=d.valid, help="valid events mixed with the malformed ones")
    p.add_argument("--broker-events", type=int, default=d.broker_events, help="events during broker faults")
    p.add_argument("--broker-kills", type=int, default=d.broker_kills, help="broker SIGKILLs")
    p.add_argument("--enumeration", type=int, default=d.enumeration, help="numbers in the enumeration sweep")
    p.add_argument("--schemathesis-examples", type=int, default=d.schemathesis_examples,
                   help="schemathesis examples per operation")
    p.add_argument("--lookups", type=int, default=d.lookups, help="lookups whose audit records are counted")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--only", default="", help=f"comma-separated scenarios (default all: {', '.join(SCENARIOS)})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where reliability.json goes")
    p.add_argument("--workdir", type=Path, help="broker data and service logs (default: a temp dir, removed)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--stress", type=int, nargs="?", const=default_workers(), default=0, metavar="WORKERS",
                   help=f"run every scenario with WORKERS busy processes oversubscribing the CPUs "
                        f"(default with the flag: twice the CPUs, {default_workers()})")
    return p


def run(params: Params, only: list[str], out: Path, workdir: Path | None, quiet: bool, *,
        stress: int = 0) -> dict[str, Outcome]:
    with CpuHog(stress) as hog:
        if stress:
            print(f"[reliability] stress: {hog.alive()} busy processes on {os.cpu_count()} CPUs",
                  file=sys.stderr, flush=True)
        return _run(params, only, out, workdir, quiet, stress=stress)


def _run(params: Params, only: list[str], out: Path, workdir: Path | None, quiet: bool, *,
         stress: int) -> dict[str, Outcome]:
    started = time.monotonic()
    tmp = workdir or Path(tempfile.mkdtemp(prefix="fraudradar-reliability-"))
    rig = Rig(tmp)
    ctx = Context(rig, params, quiet=quiet)
    results: dict[str, Outcome] = {}
    timings: dict[str, float] = {}
    try:
        rig.start_broker()
        for name in only:
            t0 = time.monotonic()
            print(f"[reliability] {name} ...", file=sys.stderr, flush=True)
            try:
                module = importlib.import_module(f"reliability.scenarios.{name}")
                results.update(module.run(ctx))
            except Exception as exc:
                log.exception("scenario %s failed", name)
                crashed = Outcome.crashed(exc)
                trouble = rig.broker_trouble()      # say it when the broker itself went away
                if trouble:
                    crashed = Outcome(False, None, f"{crashed.detail}; {trouble}")
                for check in SCENARIOS[name]:
                    results.setdefault(check, crashed)
            for check in SCENARIOS[name]:
                results.setdefault(check, Outcome.not_run("the scenario reported nothing for it"))
            timings[name] = round(time.monotonic() - t0, 1)
            print(f"[reliability] {name}: {timings[name]} s; "
                  + ", ".join(f"{c}={'PASS' if results[c].passed else 'FAIL'}" for c in SCENARIOS[name]),
                  file=sys.stderr, flush=True)
    finally:
        rig.close()
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = {"params": dataclasses.asdict(params), "scenarios": only, "timings_s": timings,
            "stress": {"busy_processes": stress, "cpus": os.cpu_count()},
            "elapsed_s": time.monotonic() - started}
    write_results(results, out, meta)
    return results


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # the rig's own Kafka clients: kafka-python's per-step warnings counted and summarised, as in
    # the services (a run under --stress would print several a second)
    logging.getLogger("kafka.net.selector").addFilter(SlowClientSteps("reliability"))
    # SIGTERM unwinds like Ctrl-C, so the rig stops the broker and services it started
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    args = build_parser().parse_args(argv)
    params = Params(events=args.events, kills=args.kills, freezes=args.freezes, hostile=args.hostile, valid=args.valid,
                    broker_events=args.broker_events, broker_kills=args.broker_kills,
                    enumeration=args.enumeration, schemathesis_examples=args.schemathesis_examples,
                    lookups=args.lookups, seed=args.seed)
    only = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    results = run(params, only, args.out, args.workdir, args.quiet, stress=args.stress)
    print(args.out.with_name(args.out.stem + ".md").read_text())
    return 0 if all(o.passed for o in results.values()) else 1
