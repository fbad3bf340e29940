"""``fraudradar score``: views → risk records, alerts and a state changelog.

A consumer group on ``fraudradar.numbers`` and ``fraudradar.devices`` (co-partitioned with the
compacted ``fraudradar.scorer-state``). Each input partition ``p`` has its own
``PartitionScorer`` (state *and* models), so whichever replica owns ``p`` computes the same thing.

The commit path (the shared ``StreamRunner`` plus one step, numbered as in the runner):

1. process the batch: every view through its partition's scorer; Risk/Alert outputs are sent;
2. flush the producer and check every future (runner);
3. (scorer, ``ChangelogStep``) before a commit: send the changelog of every entity changed since
   the last commit to partition ``p`` of ``scorer-state``, then the models' journal of what they
   learned since the last commit, or a signed model checkpoint every ``checkpoint_interval_s``
   (``services.scorer.state.modellog``) — so state and models are never behind the offsets;
4. commit the input offsets (runner). Exactly-once (the default): 1-4 are one Kafka transaction
   with the offsets sent with the consumer's group metadata, so the broker fences a replica that
   lost its partitions (docs/scorer.md). At least once: the runner first proves to the broker
   that this replica is still a member of the group's current generation (``fence_commits``).

Restore: the first record of a partition this process has no (valid) scorer for triggers a
synchronous replay of ``scorer-state[p]`` on this thread, before any of ``p``'s records are
processed (the consumer's IO thread keeps heartbeating; rebalance listeners only record what
changed, per kafka-python 3.x's rules). A scorer kept through a rebalance stays valid when
nobody else wrote ``scorer-state[p]`` since its own last write and the group's committed
offsets of partition ``p`` of all three input topics are at or behind where the scorer stands
(``Owned.next_offsets``, seeded at a restore with the committed offsets): then no other replica
made progress on ``p`` meanwhile, and what is redelivered are replays the scorer skips
(``services.scorer.restore.Restorer.current``).

Every entity record carries the source position (offset and index inside a view bundle) it
applied, so views replayed after a crash are skipped, not double counted: outputs are
idempotent (deterministic ``alert_id``, compacted ``risk``), state updates exactly-once per entity.

Feedback (``feedback.FeedbackFeed``): every replica reads all of ``fraudradar.feedback`` (no
group) and hands a report to the local scorer owning the entity's partition; its checkpoint
records the feedback offset it has applied, and a restored scorer is replayed the feedback after it.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from kafka import TopicPartition

from models import hst
from services.common import topics
from services.common.exceptions import FraudradarError
from services.common.first_seen import FirstSeen, encode_first_seen
from services.common.http import Health, ServiceHttp
from services.common.logs import setup_logging
from services.common.pseudonym import Pseudonymizer
from services.common.records import decode_link, decode_views, encode, risk_key
from services.common.stream import (
    CommitPolicy,
    DlqLimit,
    DlqLimitExceeded,
    OutputSink,
    Record,
    RejoinStalled,
    StreamConfig,
    StreamRunner,
    murmur2_partition,
)
from services.scorer import features as F
from services.scorer import metrics
from services.scorer.budget import BudgetMeter, export_cuts, parse_iso_ms
from services.scorer.detectors import model_version
from services.scorer.exceptions import RestoreStalled
from services.scorer.feedback import FeedbackFeed
from services.scorer.output import EngineOutput
from services.scorer.policy import Policy
from services.scorer.restore import Owned, Restorer
from services.scorer.settings import ScorerSettings
from services.scorer.state import COMMIT_KEY

log = logging.getLogger("fraudradar.scorer")
T = TypeVar("T")

# views in one bundle record share its offset; a view's source position is (offset << 16) + index
BUNDLE_BITS = 16
BUNDLE_MAX = (1 << BUNDLE_BITS) - 1



class ScorerProcessor:
    """The scorer step of the stream (see the module docstring for the commit path)."""

    def __init__(self, settings: ScorerSettings, pseudonymizer: Pseudonymizer, policy: Policy) -> None:
        self.settings = settings
        self.pseudonymizer = pseudonymizer
        self.policy = policy
        self.numbers_topic = settings.topic(topics.NUMBERS)
        self.devices_topic = settings.topic(topics.DEVICES)
        self.state_topic = settings.topic(topics.SCORER_STATE)
        self.risk_topic = settings.topic(topics.RISK)
        self.alerts_topic = settings.topic(topics.ALERTS)
        self.links_topic = settings.topic(topics.LINKS)
        self.first_seen_topic = settings.topic(topics.FIRST_SEEN)
        self.owned: dict[int, Owned] = {}
        self._lock = threading.Lock()
        self._assigned: set[int] = set()
        self._suspect: set[int] = set()       # revoked at some point: verify before reuse
        self._last_checkpoint: dict[int, float] = {}
        self.feedback = FeedbackFeed(settings.kafka_config(), settings.topic(topics.FEEDBACK),
                                     poll_s=settings.feedback_poll_s)
        self.model_version = model_version(policy)
        self._views_counter = {kind: metrics.VIEWS.labels(kind) for kind in ("number", "device")}
        self.budget = BudgetMeter(policy.spec.budget.alerts_per_100k_per_day)
        self._alert_watermark_ms = 0
        self._score_metric: dict[tuple[str, str], Any] = {}     # (model, entity_type) -> SCORE child
        self.restorer = Restorer(settings.kafka_config(), policy, pseudonymizer, seed=settings.seed,
                                 state_topic=self.state_topic,
                                 input_topics=[settings.topic(name) for name in topics.SCORER_INPUTS])
        self._changelog_written: dict[int, Any] = {}   # partition -> future of its last changelog record

    # -- rebalance callbacks: IO thread, record only -----------------------------------------------
    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        with self._lock:
            self._assigned |= {tp.partition for tp in partitions}

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        with self._lock:
            gone = {tp.partition for tp in partitions}
            self._assigned -= gone
            self._suspect |= gone

    def on_aborted(self, partitions: set[TopicPartition]) -> None:
        """A transaction did not commit: the engines hold state the topics no longer have (the
        aborted outputs and changelog); drop them, the next record restores from the changelog."""
        for partition in {tp.partition for tp in partitions}:
            self.owned.pop(partition, None)
            self._changelog_written.pop(partition, None)

    # -- 1. process ---------------------------------------------------------------------------------
    def process(self, records: list[Record], sink: OutputSink) -> None:
        with self._lock:
            assigned = set(self._assigned)
            suspect = set(self._suspect)
        for partition in [p for p in self.owned if p not in assigned and assigned]:
            del self.owned[partition]        # moved to another replica: its changelog is theirs now
        self.feedback.poll(self.owned, sink.partitions(self.numbers_topic))
        numbers_topic = self.numbers_topic
        for record in records:
            partition = record.partition
            owned = self.owned.get(partition)
            if owned is None or partition in suspect:
                owned = self._owned_for(record, owned)
                suspect.discard(partition)
                with self._lock:
                    self._suspect.discard(partition)
            if record.topic == self.links_topic:
                self._apply_link(owned, record, sink)
                continue
            views = _decoded(record, sink, decode_views, "INVALID_VIEW")
            if views is None:
                continue
            topic_kind = "number" if record.topic == numbers_topic else "device"
            base = record.offset << BUNDLE_BITS
            scored = 0
            for index, view in enumerate(views):
                if view.entity_type != topic_kind:
                    log.warning("view on the wrong topic ignored",
                                extra={"topic": record.topic, "entity_type": view.entity_type})
                    continue
                # a bundle's views share one Kafka offset: (offset, index) orders them exactly
                output = owned.scorer.process(view, offset=base + min(index, BUNDLE_MAX))
                if output.skipped:
                    continue
                scored += 1
                if output.emits:
                    self._emit(output, sink)
            self._views_counter[topic_kind].inc(scored)
            owned.next_offsets[record.topic] = record.offset + 1

    def _apply_link(self, owned: Owned, record: Record, sink: OutputSink) -> None:
        """A number acted on a flagged device (written by the scorer owning the device's partition)."""
        link = _decoded(record, sink, decode_link, "INVALID_LINK")
        if link is None:
            return
        owner = murmur2_partition(link.number.encode(), sink.partitions(self.numbers_topic))
        if not link.broadcast and owner != record.partition:
            log.warning("link on the wrong partition ignored", extra={"partition": record.partition})
        else:
            output = owned.scorer.apply_link(link)
            metrics.LINKS.labels("applied").inc()
            if output.emits:
                self._emit(output, sink)
        owned.next_offsets[record.topic] = record.offset + 1

    def _score_child(self, model: str, entity_type: str) -> Any:
        """``metrics.SCORE`` for these labels, kept: ``labels()`` costs a lock and a lookup per call."""
        child = self._score_metric[model, entity_type] = metrics.SCORE.labels(model, entity_type)
        return child

    def _emit(self, output: EngineOutput, sink: OutputSink) -> None:
        risk_topic = self.risk_topic
        if output.model_scores or output.score:
            score = self._score_metric
            entity_type = output.entity_type
            histogram = score.get(("fused", entity_type)) or self._score_child("fused", entity_type)
            histogram.observe(output.score)
            for model, percentile in output.model_scores.items():
                histogram = score.get((model, entity_type)) or self._score_child(model, entity_type)
                histogram.observe(100.0 * percentile)
        if output.risk is not None:
            sink.send(risk_topic, risk_key(output.entity_type, output.entity), encode(output.risk))
        for risk in output.risk_updates:
            sink.send(risk_topic, risk_key(risk.entity_type, risk.entity), encode(risk))
        for entity_type, entity in output.tombstones:
            sink.send(risk_topic, risk_key(entity_type, entity), None)
        if output.first_seen_ms:
            sink.send(self.first_seen_topic, output.entity.encode(),
                      encode_first_seen(FirstSeen(output.entity, output.first_seen_ms)))
        for link in output.links:
            if link.broadcast:
                # a device's new episode: every partition links the numbers it has seen on it
                value = encode(link)
                for partition in range(sink.partitions(self.numbers_topic)):
                    sink.send(self.links_topic, link.device.encode(), value, partition=partition)
            else:
                # to the number's partition (the views' partitioner), so the scorer owning the number applies it
                key = link.number.encode()
                sink.send(self.links_topic, key, encode(link),
                          partition=murmur2_partition(key, sink.partitions(self.numbers_topic)))
            metrics.LINKS.labels("sent").inc()
        for alert in output.alerts:
            sink.send(self.alerts_topic, alert.alert_id.encode(), encode(alert),
                      [("alert_id", alert.alert_id.encode())])
            family = alert.reasons[0].code if alert.reasons else "NONE"
            metrics.ALERTS.labels(alert.level, family).inc()
            raised_ms = parse_iso_ms(alert.raised_at)
            self.budget.alert(family, raised_ms)
            self._alert_watermark_ms = max(self._alert_watermark_ms, raised_ms)
            if alert.ingested_ms:
                metrics.EVENT_TO_ALERT.observe(max(0.0, time.time() - alert.ingested_ms / 1000))

    # -- restore ------------------------------------------------------------------------------------
    def _owned_for(self, record: Record, owned: Owned | None) -> Owned:
        """The scorer of ``record``'s partition, restored from the changelog unless ours is current."""
        partition = record.partition
        if owned is not None and self.restorer.current(owned, record):
            metrics.ENGINES_KEPT.inc()
            return owned                         # nobody else processed this partition meanwhile
        owned = self.restorer.restore(partition)
        self.feedback.rewind(owned.scorer.state.feedback_offset)
        self._last_checkpoint[partition] = time.monotonic()
        self.owned[partition] = owned
        return owned

    # -- 3. changelog before commit -----------------------------------------------------------------
    def write_changelog(self, sink: OutputSink, generation: int | None = None, member: str = "") -> None:
        """Send every changed entity's record (and due model checkpoints) to its state partition.

        Each commit marker carries the writer's group ``generation`` and ``member`` id as headers
        (``fraudradar.generation``, ``fraudradar.member``): on one partition the generations of
        successive commits never go down unless a replica that lost the partition wrote after
        its new owner (what the runner's membership check prevents)."""
        state_topic = self.state_topic
        marker_headers = None if generation is None else [
            ("fraudradar.generation", str(generation).encode()), ("fraudradar.member", member.encode())]
        now = time.monotonic()
        entities: dict[str, int] = {"number": 0, "device": 0}
        state_bytes = 0
        for partition, owned in self.owned.items():
            state = owned.scorer.state
            last = None
            # entity records, what the models learned meanwhile (journal) or a checkpoint, the
            # commit marker, then tombstones: a restore can tell a commit a crash cut short
            due = (now - self._last_checkpoint.get(partition, 0.0) >= self.settings.checkpoint_interval_s
                   or state.journal.since_checkpoint >= self.settings.journal_max_entries)
            for key, value in state.commit_records(checkpoint=due):
                last = sink.send(state_topic, key, value, marker_headers if key == COMMIT_KEY else None,
                                 partition=partition)
            if due:
                self._last_checkpoint[partition] = now
            if last is not None:
                self._changelog_written[partition] = last
            for entity_type, n in state.entities().items():
                entities[entity_type] += n
            state_bytes += state.state_bytes()
        for kind, count in entities.items():
            metrics.ENTITIES.labels(kind).set(count)
        watermark = max((o.scorer.state.watermark_ms for o in self.owned.values()), default=0)
        self.budget.rates(entities["number"], max(watermark, self._alert_watermark_ms))
        export_cuts([o.scorer.state.models for o in self.owned.values()])
        metrics.STATE_BYTES.set(state_bytes)

    def changelog_flushed(self) -> None:
        """After the flush (exactly-once: after the commit): each scorer's changelog partition
        holds nothing after its last write unless another replica writes there too;
        ``Restorer.current`` checks that after a rebalance."""
        for partition, future in self._changelog_written.items():
            owned = self.owned.get(partition)
            if owned is not None:
                owned.changelog_end = int(future.get(timeout=0).offset) + 1
        self._changelog_written.clear()

    def close(self) -> None:
        self.restorer.close()
        self.feedback.close()


class ChangelogStep:
    """Step 3 of the commit path (a ``CommitStep`` of the shared runner): the state changelog
    right before each offset commit, then each partition's changelog end once it is flushed."""

    def __init__(self, processor: ScorerProcessor) -> None:
        self.processor = processor

    def write(self, sink: OutputSink, generation: int, member: str) -> None:
        self.processor.write_changelog(sink, generation if generation >= 0 else None, member)

    def written(self) -> None:
        self.processor.changelog_flushed()


def build(settings: ScorerSettings) -> tuple[StreamRunner, ScorerProcessor, Health]:
    pseudonymizer = settings.pseudonymizer()
    policy = Policy.load(pseudonymizer, settings.policy_file)
    processor = ScorerProcessor(settings, pseudonymizer, policy)
    config = StreamConfig(
        service="scorer", group_id=settings.group_id,
        topics=[settings.topic(name) for name in topics.SCORER_INPUTS],
        dlq_topic=settings.topic(topics.DLQ), commit=CommitPolicy(settings.commit_interval_s),
        dlq_limit=DlqLimit(), instance_id=settings.instance_id, max_poll_records=settings.max_poll_records,
        # the changelog must never be written by a replica that lost its partitions: with
        # exactly_once the broker fences it (KIP-447, producer epochs), else a membership check
        fence_commits=not settings.exactly_once,
        exactly_once=settings.exactly_once, transaction_timeout_ms=settings.transaction_timeout_ms,
        transactional_id=f"fraudradar-scorer-{settings.instance_id}" if settings.instance_id else None,
        restart_from_commit=True,   # a restored scorer holds what was committed: replay from there
        # co-partitioned topics: partition p of numbers, devices and links must land on one replica
        consumer_overrides={"partition_assignment_strategy": [_range_assignor()],
                            "session_timeout_ms": settings.session_timeout_ms,
                            "heartbeat_interval_ms": min(3000, settings.session_timeout_ms // 3)},
    )
    health = Health()
    runner = StreamRunner(settings, config, processor, health, commit_steps=[ChangelogStep(processor)])
    consumer = runner.consumer
    processor.restorer.committed = lambda tp: consumer.committed(tp, timeout_ms=10_000)
    return runner, processor, health


def _decoded(record: Record, sink: OutputSink, decode: Callable[[bytes], T], reason: str) -> T | None:
    """``decode(record.value)``, marking the record consumed; None (and the DLQ, with ``reason``) if it fails."""
    try:
        value = decode(record.value)  # type: ignore[arg-type]
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
        sink.dead_letter(record, reason, str(exc)[:200])
        return None
    sink.ok(record)
    return value


def _range_assignor() -> Any:
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    return RangePartitionAssignor


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http-port", type=int, help="port of /metrics, /healthz, /readyz")
    parser.add_argument("--policy", type=Path, help="policy YAML (default: packaged policy.yaml)")
    args = parser.parse_args(argv)
    settings = ScorerSettings()
    if args.http_port is not None:
        settings = settings.model_copy(update={"http_port": args.http_port})
    if args.policy is not None:
        settings = settings.model_copy(update={"policy_file": args.policy})
    setup_logging("scorer", settings.log_level)
    faulthandler.register(signal.SIGUSR1)   # `kill -USR1 <pid>`: every thread's stack to stderr
    try:
        runner, processor, health = build(settings)
    except FraudradarError as exc:
        log.error("cannot start scorer", extra={"error": str(exc)})
        print(f"fraudradar score: {exc}", file=sys.stderr)
        return 2
    http = ServiceHttp(settings.http_host, settings.http_port, health)
    http.start()
    runner.install_signal_handlers()
    log.info("scorer started", extra={"http_port": http.port, "model_version": processor.model_version,
                                      "instance_id": settings.instance_id,
                                      "record_update": "compiled" if F.COMPILED_APPLY is not None else "python",
                                      "hst_walk": "compiled" if hst.COMPILED_WALK is not None else "python"})
    if F.COMPILED_APPLY is None or hst.COMPILED_WALK is None:
        log.warning("compiled parts not in use (services/scorer/_fastcore.c, models/_hstcore.c): the scorer runs "
                    "the same code in Python, with identical results and fewer views per second (not "
                    "built for lack of a C compiler, or FRAUDRADAR_PURE_PYTHON is set)")
    try:
        runner.run()
    except (RejoinStalled, RestoreStalled):
        return 3                      # logged where raised; the supervisor restarts the process
    except DlqLimitExceeded as exc:
        from services.common.metrics import DLQ_LIMIT_TRIPPED

        DLQ_LIMIT_TRIPPED.labels("scorer").inc()
        log.error("DLQ limit tripped; stopping without committing", extra={"error": str(exc)})
        return 4
    finally:
        processor.close()
        http.stop()
    return 0
