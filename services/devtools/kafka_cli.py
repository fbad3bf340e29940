"""``fraudradar kafka up|down|status|fetch``: a local broker for the demo and development.

``down --purge`` also deletes the broker's data (its topics), which otherwise stays in the
work directory for the next ``up``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.devtools.kafka_local import (
    KafkaStartError,
    KafkaToolMissing,
    LocalKafka,
    cache_dir,
    ensure_jars,
    libs_dir,
    purge_broker_data,
)


def _workdir(arg: str | None) -> Path:
    return Path(arg) if arg else cache_dir() / "broker"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar kafka", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "fetch"])
    parser.add_argument("--dir", help="broker work directory (default: <cache>/broker)")
    parser.add_argument("--port", type=int, default=0, help="client port (default: a free one)")
    parser.add_argument("--heap", default="512m", help="broker JVM heap, e.g. 512m or 1g")
    parser.add_argument("--json", action="store_true", help="print machine-readable status")
    parser.add_argument("--purge", action="store_true", help="with down: also delete the broker's data")
    args = parser.parse_args(argv)
    workdir = _workdir(args.dir)
    try:
        if args.action == "fetch":
            print(f"Kafka jars in {ensure_jars()}")
            return 0
        running = LocalKafka.from_state(workdir)
        if args.action == "up":
            if running is None:
                if not (libs_dir() / ".complete").exists():
                    print("resolving Apache Kafka jars from Maven Central (first run only)...", file=sys.stderr)
                running = LocalKafka(workdir=workdir, port=args.port, heap=args.heap).start()
                print(f"Kafka up on {running.bootstrap} in {running.startup_s:.1f}s (dir {workdir})", file=sys.stderr)
            _report(running, args.json)
            return 0
        if args.action == "down":
            if running is None:
                print("no local Kafka is running", file=sys.stderr)
            else:
                running.stop()
                print("Kafka stopped", file=sys.stderr)
            if args.purge:
                freed = purge_broker_data(workdir)
                print(f"deleted the broker's data in {workdir} ({freed / 1e6:.0f} MB)", file=sys.stderr)
            return 0
        if running is None:
            print(json.dumps({"running": False}) if args.json else "no local Kafka is running")
            return 1
        _report(running, args.json)
        return 0
    except (KafkaToolMissing, KafkaStartError) as exc:
        print(f"fraudradar kafka: {exc}", file=sys.stderr)
        return 3


def _report(kafka: LocalKafka, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"running": True, "bootstrap": kafka.bootstrap, "pid": kafka.pid, "dir": str(kafka.workdir)}))
    else:
        print(kafka.bootstrap)
