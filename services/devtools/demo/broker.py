"""The Kafka broker a demo run uses: ``--bootstrap``, the running local one, or one of its own."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from services.devtools.demo.console import say
from services.devtools.demo.signals import spawning
from services.devtools.kafka_local import LocalKafka, cache_dir, libs_dir, purge_broker_data


@dataclass
class Broker:
    bootstrap: str
    started_here: bool


@contextmanager
def demo_broker(args: argparse.Namespace) -> Iterator[Broker]:
    """The broker to use: --bootstrap, else the running `fraudradar kafka up` one, else a fresh one
    on empty data that stops when the demo ends (also on SIGTERM/SIGINT)."""
    if args.bootstrap:
        yield Broker(args.bootstrap, started_here=False)
        return
    workdir = cache_dir() / "broker"
    running = LocalKafka.from_state(workdir)
    if running is not None:
        say(f"  reusing the local Kafka on {running.bootstrap} (started by `fraudradar kafka up`)")
        delete_old_demo_topics(running.bootstrap)
        yield Broker(running.bootstrap, started_here=False)
        return
    freed = purge_broker_data(workdir)
    if freed:
        say(f"  deleted the data of an earlier demo's broker ({freed / 1e6:.0f} MB)")
    if (libs_dir() / ".complete").exists():
        say("starting the local Kafka broker...")
    else:
        say("starting the local Kafka broker (its jars are not in the cache yet: Maven resolves them "
            "first, a few minutes)...")
    kafka = LocalKafka(workdir=workdir)
    try:
        with spawning():  # a signal during the start stops the broker once it is up (at most start_timeout_s)
            kafka.start()
        say(f"  Kafka up on {kafka.bootstrap} in {kafka.startup_s:.1f}s")
        yield Broker(kafka.bootstrap, started_here=True)
    finally:
        kafka.stop()


def delete_old_demo_topics(bootstrap: str) -> None:
    """Topics of earlier demo runs (prefix ``demo-``) on a broker that outlives the demo."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fraudradar-demo")
    try:
        old = [t for t in admin.list_topics() if t.startswith("demo-")]
        if old:
            admin.delete_topics(old)
            say(f"  deleted {len(old)} topics of earlier demo runs")
    finally:
        admin.close()
