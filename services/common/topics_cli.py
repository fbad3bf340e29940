"""``fraudradar topics ensure``: create or align every topic (idempotent)."""

from __future__ import annotations

import argparse

from services.common.config import CommonSettings
from services.common.topics import default_specs, ensure_topics, topic_name


def main(argv: list[str]) -> int:
    settings = CommonSettings()
    parser = argparse.ArgumentParser(prog="fraudradar topics", description=__doc__)
    parser.add_argument("action", choices=["ensure", "list"])
    parser.add_argument("--bootstrap", default=settings.bootstrap)
    parser.add_argument("--prefix", default=settings.topic_prefix)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--replication", type=int, default=1)
    args = parser.parse_args(argv)
    if args.action == "list":
        for spec in default_specs(args.partitions):
            configs = ",".join(f"{k}={v}" for k, v in spec.configs.items())
            print(f"{topic_name(args.prefix, spec.suffix):<32} partitions={spec.partitions:<3} {configs}  # {spec.doc}")
        return 0
    settings = settings.model_copy(update={"bootstrap": args.bootstrap})
    cfg = settings.kafka_config()
    cfg.pop("bootstrap_servers")
    result = ensure_topics(args.bootstrap, args.prefix, args.partitions, args.replication, admin_config=cfg)
    for name, state in result.items():
        print(f"{name:<32} {state}")
    return 0
