"""The ``fraudradar`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``main(argv: list[str]) -> int`` and is imported only when
used, so ``fraudradar validate`` does not pay for River or FastAPI.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "kafka": ("services.devtools.kafka_cli", "start/stop/status a local single-node Kafka (KRaft)"),
    "topics": ("services.common.topics_cli", "create or align fraudradar's topics (idempotent)"),
    "keys": ("services.devtools.keys_cli", "generate pseudonym and disclosure key files"),
    "validate": ("services.ingest.validate_cli", "check a JSON-lines export against the event contract"),
    "ingest": ("services.ingest.service", "run the ingest service (telco.events -> views, DLQ)"),
    "simulate": ("services.devtools.simulator.cli", "generate labelled traffic (files or live to Kafka)"),
    "simulate-calls": ("services.devtools.simulator.calls", "generate call signalling (bank-spoof scenario)"),
    "backtest": ("services.devtools.simulator.backtest", "replay a file through ingest+scorer and measure detection"),
    "backtest-sweep": ("services.devtools.simulator.sweep", "backtest many randomised worlds, report the worst"),
    "registry": ("services.scorer.registry", "import and check the sender-ID registry (A2P sender IDs)"),
    "import-cdr": ("services.ingest.cdr_import", "map a telco CSV export onto the event contract"),
    "evaluate-table": ("services.devtools.simulator.evaluate_table", "replay a labelled table through the models"),
    "score": ("services.scorer.service", "run the scorer (views -> risk, alerts)"),
    "api": ("services.api.cli", "run the partner API"),
    "demo": ("services.devtools.demo.cli", "run the whole pipeline locally with simulated traffic"),
}


def _usage() -> str:
    lines = ["usage: fraudradar COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14} {doc}" for name, (_, doc) in COMMANDS.items()]
    lines += ["", "fraudradar COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"fraudradar: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    code: int = module.main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main())
