"""``fraudradar demo``: the whole pipeline on this machine, with simulated traffic, in one command.

    fraudradar demo [--minutes 3] [--out demo-out]

Starts (or reuses) the local Kafka broker, creates the topics under a fresh prefix, starts
ingest, scorer and API as subprocesses, streams a simulated mix of normal traffic and fraud
scenarios for about ``--minutes``, shows live progress (events/s, alerts, lag), then prints
injected fraud against what was flagged (with time to detect), a few real API answers (token →
lookup of a flagged number → alert feed), runs the backtest on the same traffic for an HTML
report, writes ``<out>/config/bank.env`` (the API's URL, the demo bank's client id and secret, a
flagged and a clean number: what docs/bank-guide.md runs against) and prints how to use it.

``--serve`` keeps ingest, scorer and API up after that until Ctrl-C or SIGTERM, so the bank
guide's commands can be run against them; without it the services stop when the demo ends.
Either way, Ctrl-C (SIGINT) and SIGTERM stop every child the demo started. A broker the demo
started itself (none was running, no ``--bootstrap``) starts on empty data (what an earlier
demo left is deleted first, so the cache does not grow run after run) and stops with the demo;
a broker that was already running (``fraudradar kafka up``) is reused and left running, with
the topics of earlier demo runs deleted.

Blocking: all of it, by design (minutes). Each step says what it waits for; a service that is
not part of this checkout yet is reported as such and the demo carries on without it.
``--setup-only`` writes keys, the token signing key and a demo partner into ``--out`` and exits
(docker-compose.yml uses it).
"""

from __future__ import annotations

import argparse
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from services.devtools.demo.bank_env import print_guide_start, write_bank_env
from services.devtools.demo.broker import Broker, demo_broker
from services.devtools.demo.config import setup_config
from services.devtools.demo.console import say
from services.devtools.demo.processes import Run
from services.devtools.demo.results import backtest, summarise
from services.devtools.demo.signals import Interrupted, stopping_on_signals
from services.devtools.demo.tour import api_tour
from services.devtools.demo.traffic import simulate, stream
from services.devtools.kafka_local import KafkaStartError, KafkaToolMissing


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to stream traffic (default 3)")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="work directory (default ./demo-out)")
    parser.add_argument("--subscribers", type=int, default=20000, help="simulated subscribers (default 20000)")
    parser.add_argument("--sim-duration", default="3h", help="simulated traffic span (default 3h)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the keyed topics (default 3)")
    parser.add_argument("--min-level", default="high", choices=["low", "medium", "high", "critical"],
                        help="alert level that counts as flagged in the table (default high)")
    parser.add_argument("--bootstrap", help="use this Kafka instead of the local broker")
    parser.add_argument("--serve", action="store_true", help="keep the services up after the summary until Ctrl-C")
    parser.add_argument("--setup-only", action="store_true", help="write keys and partners into --out and exit")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    if args.setup_only:
        config = setup_config(out)
        say(f"keys and partners in {out}; demo partner: client_id {config.client_id}, "
            f"client_secret {config.client_secret}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    started = time.monotonic()
    say(f"fraudradar demo: work directory {out}")
    with stopping_on_signals() as received:
        try:
            with demo_broker(args) as broker:
                code = _run(args, out, broker, started)
        except Interrupted:
            code = 128 + received[0] if received else 130
        except (KafkaToolMissing, KafkaStartError) as exc:
            say(f"fraudradar demo: {exc}")
            code = 3
    if received:
        say(f"stopped on {signal.Signals(received[0]).name}: every process the demo started has ended")
    return code


def _run(args: argparse.Namespace, out: Path, broker: Broker, started: float) -> int:
    from services.common.topics import ensure_topics

    prefix = "demo-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "."
    run = Run(args, out, broker.bootstrap, prefix, setup_config(out / "config"))
    ensure_topics(broker.bootstrap, prefix, partitions=args.partitions)
    say(f"  topics created under prefix {prefix!r} ({args.partitions} partitions)")
    report: Path | None = None
    try:
        run.start_services()
        files = simulate(run)
        truth, streamed = None, 0
        if files is not None:
            truth, streamed = stream(run, files[0])
        alerts = summarise(run, truth, streamed)
        numbers = api_tour(run, alerts)
        report = backtest(run, files)
        bank_env = write_bank_env(run, numbers)
        say("")
        if report is not None:
            say(f"report: {report}")
        say(f"logs: {out / 'logs'}   config and keys: {out / 'config'}")
        if bank_env is not None:
            print_guide_start(bank_env, numbers, serving=args.serve)
        if args.serve:
            say("\nservices keep running (Ctrl-C or SIGTERM stops them"
                + (" and the Kafka broker)" if broker.started_here else ")") + ":")
            for s in run.services.values():
                if s.running:
                    say(f"  {s.name:<7} http://127.0.0.1:{s.port}")
            while any(s.running for s in run.services.values()):
                time.sleep(1)
            say("\nevery service has exited (see the logs)")
    finally:
        run.stop_services()
    if broker.started_here:
        after = "the demo's Kafka broker stops now too"
    elif args.bootstrap:
        after = f"Kafka on {broker.bootstrap} is not the demo's and keeps running"
    else:
        after = f"Kafka keeps running on {broker.bootstrap}: stop it with `fraudradar kafka down`"
    say(f"done in {(time.monotonic() - started) / 60:.1f} min. The services are stopped; {after}.")
    return 0
