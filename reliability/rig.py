"""The test rig: one real broker the harness owns (so it may kill it), services as subprocesses.

Everything the scenarios observe comes from the broker itself (end offsets, committed group
offsets, the records) or from the services' own ``/metrics``; nothing is mocked. Every wait is
bounded and says what it waited for when it gives up.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from services.common import topics
from services.common.pseudonym import generate_key_text
from services.devtools.kafka_local import LocalKafka, _tail, free_port

ROOT = Path(__file__).resolve().parents[1]


class WaitTimeout(RuntimeError):
    """A bounded wait ran out."""


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise WaitTimeout(f"gave up after {timeout_s:.0f}s waiting for {what}")


@dataclass
class Service:
    """One service subprocess (``python -m services.cli NAME``) with its log and HTTP port."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    http_port: int
    group: str
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)   # exit codes of runs that ended on their own
    last_metrics: str = ""
    module: str = "services.cli"       # what ``python -m`` runs (reliability.commit_freeze wraps it)

    def start(self) -> Service:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args, "--http-port", str(self.http_port)],
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reap(self) -> int | None:
        """If the process ended on its own, record its exit code and return it."""
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            self.exits.append(code)
            self.proc = None
            return code
        return None

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):     # exited meanwhile (reaped later)
                os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)

    def stopped(self) -> bool:
        """Is the process stopped (state ``T``: it SIGSTOPped itself, or was paused)?"""
        if self.proc is None:
            return False
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")

    def scrape(self) -> str:
        """The service's /metrics text (kept as ``last_metrics`` for the privacy scan)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return self.last_metrics
        self.last_metrics = text
        return text

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
        return metric_sum(self.scrape(), name, **labels)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (clean: finish, flush, commit), SIGKILL after ``timeout_s``; the exit code."""
        if self.proc is None:
            return None
        self.scrape()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


@dataclass
class Rig:
    """A broker in ``workdir`` plus the services started on it (all stopped by ``close``)."""

    workdir: Path
    partitions: int = 3
    kafka: LocalKafka | None = None
    services: list[Service] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keys = {"FRAUDRADAR_PSEUDONYM_KEY": generate_key_text("prel"),
                     "FRAUDRADAR_DISCLOSURE_KEY": generate_key_text("drel")}

    # -- broker ------------------------------------------------------------------------------
    def start_broker(self) -> None:
        self.kafka = LocalKafka(workdir=self.workdir / "kafka").start()

    @property
    def bootstrap(self) -> str:
        assert self.kafka is not None
        return self.kafka.bootstrap

    def kill_broker(self) -> None:
        assert self.kafka is not None
        self.kafka.kill()

    def restart_broker(self) -> float:
        """Start the broker again on the same data and ports; seconds until it is ready."""
        assert self.kafka is not None
        started = time.monotonic()
        self.kafka.start()
        return time.monotonic() - started

    def broker_trouble(self, low_disk_bytes: int = 256 << 20) -> str | None:
        """Why the rig's broker may have failed a scenario, or None: it died on its own (a pid
        still set but no process: ``kill_broker`` clears the pid), with its log's last lines, and
        whether the disk under the workdir is nearly full (a full disk kills the broker)."""
        problems = []
        kafka = self.kafka
        if kafka is not None and kafka.pid is not None and not kafka.alive():
            lines = _tail(kafka.workdir / "kafka.log", 8).splitlines()
            tail = " | ".join(line.strip() for line in lines if line.strip())
            problems.append(f"the broker (pid {kafka.pid}) died on its own; its log ends: {tail[-800:]}")
        free = shutil.disk_usage(self.workdir).free
        if free < low_disk_bytes:
            problems.append(f"only {free >> 20} MiB free on the disk of {self.workdir}")
        return "; ".join(problems) or None

    def close(self) -> None:
        for service in self.services:
            if service.proc is not None:
                service.resume()
                service.stop(timeout_s=20)
        if self.kafka is not None:
            self.kafka.stop()

    # -- topics ------------------------------------------------------------------------------
    def new_prefix(self, label: str) -> str:
        prefix = f"rel-{label}-{uuid.uuid4().hex[:6]}."
        topics.ensure_topics(self.bootstrap, prefix, partitions=self.partitions)
        self.prefixes.append(prefix)
        return prefix

    def alter_topic(self, name: str, configs: dict[str, str]) -> None:
        from kafka.admin import ConfigResource, ConfigResourceType

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=configs)])
        finally:
            admin.close()

    @contextmanager
    def keys_in_environ(self) -> Iterator[None]:
        """The rig's keys in ``os.environ`` for the body only: the in-process API helpers and
        settings read them there, and left set they would reach later tests' subprocesses in the
        same pytest session (whose scorer would then pseudonymise differently). What was set
        before comes back after."""
        saved = {k: os.environ.get(k) for k in self.keys}
        os.environ.update(self.keys)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def env(self, prefix: str, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT), "FRAUDRADAR_BOOTSTRAP": self.bootstrap,
                "FRAUDRADAR_TOPIC_PREFIX": prefix, **self.keys, **extra}

    def service(self, name: str, args: list[str], prefix: str, group: str | None = None,
                module: str = "services.cli", **extra: str) -> Service:
        """A service on ``prefix`` with its own consumer group (``<prefix><name>`` unless ``group``
        names one: replicas of one service share it)."""
        log = self.workdir / "logs" / f"{prefix.rstrip('.')}-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        group = group or f"{prefix}{name}"
        svc = Service(name, args, self.env(prefix, FRAUDRADAR_GROUP_ID=group, **extra), log, free_port(), group,
                      module=module)
        self.services.append(svc)
        return svc

    # -- offsets -----------------------------------------------------------------------------
    def _consumer(self, **kw: Any) -> KafkaConsumer:
        return KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                             request_timeout_ms=30_000, isolation_level="read_committed", **kw)

    def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = self._consumer()
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
        finally:
            consumer.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=15_000)
        try:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
        finally:
            admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}

    def progress(self, group: str, topic_names: Iterable[str]) -> tuple[int, int]:
        """(committed records, end records) of ``group`` over ``topic_names``."""
        done = total = 0
        for name in topic_names:
            ends = self.end_offsets(name)
            try:
                committed = self.committed(group, name)
            except KafkaError:  # coordinator moving (broker restart): count as no progress yet
                committed = {}
            total += sum(ends.values())
            done += sum(min(committed.get(p, 0), end) for p, end in ends.items())
        return done, total

    def caught_up(self, group: str, topic_names: Iterable[str]) -> bool:
        names = list(topic_names)
        done, total = self.progress(group, names)
        return done >= total

    # -- records -----------------------------------------------------------------------------
    def stable_end_offsets(self, topic: str, timeout_s: float = 120.0) -> dict[int, int]:
        """End offsets once no transaction is open on ``topic`` (the last stable offset equals the
        high watermark), or after ``timeout_s`` as they stand. A killed service's open
        transaction holds ``read_committed`` readers at its first record until the broker aborts
        it (the transaction timeout); what the restarted service committed after it is hidden
        until then, and reading then would count it missing."""
        deadline = time.monotonic() + timeout_s
        while True:
            stable = self.end_offsets(topic)
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, request_timeout_ms=30_000)
            try:
                tps = [TopicPartition(topic, p) for p in stable]
                high = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
            finally:
                consumer.close()
            if stable == high or time.monotonic() > deadline:
                return stable
            time.sleep(0.5)

    def records(self, topic: str, timeout_s: float = 300.0, stable_s: float = 0.0) -> Iterator[Any]:
        """Every record of ``topic`` up to its end offsets now (streamed, bounded in time); with
        ``stable_s``, first up to that long until no transaction is open on it (for a final
        count after the writers stopped: see ``stable_end_offsets``)."""
        ends = self.stable_end_offsets(topic, stable_s) if stable_s else self.end_offsets(topic)
        consumer = self._consumer(max_poll_records=5000, fetch_max_bytes=64 * 1024 * 1024,
                                  max_partition_fetch_bytes=16 * 1024 * 1024)
        try:
            tps = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
            if not tps:
                return
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            remaining = {tp for tp in tps}
            deadline = time.monotonic() + timeout_s
            while remaining:
                if time.monotonic() > deadline:
                    raise WaitTimeout(f"reading {topic}: {len(remaining)} partitions short of their end")
                for tp, recs in consumer.poll(timeout_ms=500).items():
                    end = ends[tp.partition]
                    for rec in recs:
                        if rec.offset < end:
                            yield rec
                    if consumer.position(tp) >= end:
                        remaining.discard(tp)
                        consumer.pause(tp)
                for tp in list(remaining):
                    if consumer.position(tp) >= ends[tp.partition]:
                        remaining.discard(tp)
        finally:
            consumer.close()

    def producer(self, **kw: Any) -> KafkaProducer:
        return KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=20,
                             batch_size=512 * 1024, max_request_size=4 * 1024 * 1024, **kw)

    def produce(self, topic: str, records: Iterable[tuple[bytes | None, bytes | None]],
                partitioned: Iterable[int] | None = None) -> int:
        producer = self.producer()
        n = 0
        parts = iter(partitioned) if partitioned is not None else None
        for key, value in records:
            producer.send(topic, key=key, value=value, partition=next(parts) if parts is not None else None)
            n += 1
        producer.flush(120)
        producer.close()
        return n

    def copy_topics_paced(self, pairs: list[tuple[str, str]], seconds: float) -> tuple[int, threading.Thread]:
        """Copy each ``source`` into its ``target`` (same partitions, same order) spread evenly
        over ``seconds`` in a background thread: a live stream instead of a backlog, so a
        consumer's committed progress follows the copy. Returns (records, the started thread)."""
        parts: list[tuple[str, list[Any]]] = []
        for source, target in pairs:
            by_partition: dict[int, list[Any]] = {}
            for rec in self.records(source):
                by_partition.setdefault(rec.partition, []).append(rec)
            parts += [(target, recs) for _, recs in sorted(by_partition.items())]
        total = sum(len(recs) for _, recs in parts)
        slices = max(1, min(200, total))

        def copy() -> None:
            producer = self.producer(max_in_flight_requests_per_connection=1)
            started = time.monotonic()
            for i in range(slices):
                for target, recs in parts:
                    lo, hi = len(recs) * i // slices, len(recs) * (i + 1) // slices
                    for rec in recs[lo:hi]:
                        producer.send(target, key=rec.key, value=rec.value, headers=list(rec.headers or []),
                                      partition=rec.partition)
                producer.flush(120)
                time.sleep(max(0.0, started + seconds * (i + 1) / slices - time.monotonic()))
            producer.close()

        thread = threading.Thread(target=copy, name="paced-copy", daemon=True)
        thread.start()
        return total, thread

    def copy_topic(self, source: str, target: str) -> int:
        """Copy ``source`` into ``target`` partition by partition, in order (the committed records
        only; a transactional source's markers are not copied): the crash run then reads exactly
        the records the reference run read."""
        producer = self.producer(max_in_flight_requests_per_connection=1)
        n = 0
        for rec in self.records(source):
            producer.send(target, key=rec.key, value=rec.value, headers=list(rec.headers or []),
                          partition=rec.partition)
            n += 1
        producer.flush(120)
        producer.close()
        return n
