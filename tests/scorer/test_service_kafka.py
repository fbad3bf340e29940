"""The scorer service on the real broker: scenario alerts, kill -9 and restart, two replicas.

One labelled view stream (``services.devtools.synthetic``) is written to three fresh topic sets;
the uninterrupted single-process run is the reference the other two must reproduce exactly
(same set of ``alert_id``s, nothing lost, nothing new after dedupe).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError

from services.common import topics
from services.common.normalise import normalise_number
from services.common.pseudonym import Pseudonymizer, parse_key
from services.common.records import Alert, Risk, View, decode_alert, decode_risk, encode
from services.common.topics import ensure_topics
from services.devtools.synthetic import Generator, Labelled
from services.scorer.partition import PartitionScorer
from services.scorer.state import COMMIT_KEY
from services.scorer.state.changelog import _MANIFEST, MAGIC, MANIFEST_KEY
from tests.conftest import TEST_PSEUDONYM_KEY

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
PSEUDO = Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY))


@pytest.fixture(scope="module")
def dataset() -> Labelled:
    bank = PSEUDO("msisdn", normalise_number("+31205550100", "NL").value)
    return Generator(seed=11).stream(normal=300, hours=4, fraud_start_h=2, bank_numbers=[bank])


def _prefix(bootstrap: str) -> str:
    prefix = f"s{uuid.uuid4().hex[:8]}."
    ensure_topics(bootstrap, prefix, partitions=3)
    return prefix


def _produce(bootstrap: str, prefix: str, views: list[View]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    for view in views:
        topic = topics.NUMBERS if view.entity_type == "number" else topics.DEVICES
        producer.send(prefix + topic, key=view.entity.encode(), value=encode(view))
    producer.flush()
    producer.close()


class Scorer:
    """One ``fraudradar score`` process with its JSON log in a file."""

    def __init__(self, bootstrap: str, prefix: str, group: str, log_path: Path,
                 instance_id: str | None = None) -> None:
        env = dict(os.environ, FRAUDRADAR_BOOTSTRAP=bootstrap, FRAUDRADAR_TOPIC_PREFIX=prefix,
                   FRAUDRADAR_GROUP_ID=group, FRAUDRADAR_COMMIT_INTERVAL_S="0.3",
                   FRAUDRADAR_CHECKPOINT_INTERVAL_S="1", FRAUDRADAR_SESSION_TIMEOUT_MS="10000",
                   PYTHONPATH=str(ROOT))
        if instance_id:
            env["FRAUDRADAR_INSTANCE_ID"] = instance_id
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "services.cli", "score", "--http-port", "0"],
                                     env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log)

    def logs(self) -> list[dict[str, object]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def wait_log(self, msg: str, timeout: float = 60.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.logs():
                if entry.get("msg") == msg:
                    return entry
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            time.sleep(0.1)
        raise AssertionError(f"no {msg!r} log in {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _ends(bootstrap: str, prefix: str, names: tuple[str, ...] = (topics.NUMBERS, topics.DEVICES)
          ) -> dict[TopicPartition, int]:
    """End offsets of all partitions of ``names``. A fresh client can answer {} before it has the
    topics' metadata (seen under load), which made the wait below return at once: retry."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    tps = [TopicPartition(prefix + t, p) for t in names for p in range(3)]
    try:
        deadline = time.monotonic() + 60
        while True:
            ends = consumer.end_offsets(tps)
            if set(ends) == set(tps) and (sum(ends.values()) > 0 or names == (topics.LINKS,)):
                return dict(ends)
            if time.monotonic() > deadline:
                raise AssertionError(f"no end offsets for the views: {ends}")
            time.sleep(0.2)
    finally:
        consumer.close()


def _wait_committed(bootstrap: str, prefix: str, group: str, timeout: float = 120.0) -> None:
    """Until the group has committed every view, then every link those views produced (links
    are flushed before the commit of the views that made them, and applying one makes none)."""
    _wait_offsets(bootstrap, group, _ends(bootstrap, prefix), timeout)
    _wait_offsets(bootstrap, group, _ends(bootstrap, prefix, (topics.LINKS,)), timeout)


def _wait_offsets(bootstrap: str, group: str, ends: dict[TopicPartition, int], timeout: float) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout
        committed: dict[TopicPartition, int] = {}
        while time.monotonic() < deadline:
            try:
                offsets = admin.list_group_offsets({group: None}).get(group, {})
            except (CoordinatorLoadInProgressError, CoordinatorNotAvailableError):
                time.sleep(0.5)         # the group coordinator is still loading (fresh broker)
                continue
            committed = {tp: om.offset for tp, om in offsets.items()}
            if all(committed.get(tp, 0) >= end for tp, end in ends.items() if end):
                return
            time.sleep(0.2)
        raise AssertionError(f"group {group} did not catch up: {committed} vs {ends}")
    finally:
        admin.close()


def _records(bootstrap: str, topic: str, isolation: str = "read_committed") -> dict[int, list[ConsumerRecord]]:
    """Every record of ``topic`` ``isolation`` lets a reader see, per partition in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation)
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    out: dict[int, list[ConsumerRecord]] = {tp.partition: [] for tp in tps}
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        for tp, recs in consumer.poll(timeout_ms=500).items():
            out[tp.partition].extend(recs)
    consumer.close()
    return out


def _read_partitions(bootstrap: str, topic: str) -> dict[int, list[tuple[bytes, bytes | None]]]:
    """Every record of ``topic`` as (key, value), per partition in offset order."""
    return {p: [(r.key, r.value) for r in recs] for p, recs in _records(bootstrap, topic).items()}


def _read(bootstrap: str, topic: str) -> list[tuple[bytes, bytes | None]]:
    return [record for records in _read_partitions(bootstrap, topic).values() for record in records]


def _alerts(bootstrap: str, prefix: str) -> list[Alert]:
    return [decode_alert(v) for _, v in _read(bootstrap, prefix + topics.ALERTS) if v is not None]


def _risks(bootstrap: str, prefix: str) -> list[Risk]:
    return [decode_risk(v) for _, v in _read(bootstrap, prefix + topics.RISK) if v is not None]


@pytest.fixture(scope="module")
def reference(kafka_bootstrap: str, dataset: Labelled, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[str, list[Alert]]]:
    prefix = _prefix(kafka_bootstrap)
    _produce(kafka_bootstrap, prefix, dataset.views)
    scorer = Scorer(kafka_bootstrap, prefix, "ref", tmp_path_factory.mktemp("ref") / "scorer.log")
    try:
        started = scorer.wait_log("scorer started")
        assert started["record_update"] == "compiled"     # the real process runs the C (_fastcore.c)
        assert started["hst_walk"] == "compiled"          # ... and models/_hstcore.c
        _wait_committed(kafka_bootstrap, prefix, "ref")
        port = started["http_port"]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        for name in ("fraudradar_scorer_views_total", "fraudradar_alerts_total", "fraudradar_event_to_alert_seconds",
                     "fraudradar_scorer_entities", "fraudradar_scorer_state_bytes", "fraudradar_score_bucket",
                     "fraudradar_scorer_restore_seconds", "fraudradar_consumer_lag"):
            assert name in body, name
    finally:
        scorer.stop()
    yield prefix, _alerts(kafka_bootstrap, prefix)


def test_scenario_mix_gives_expected_alerts_and_risk(kafka_bootstrap: str, dataset: Labelled,
                                                     reference: tuple[str, list[Alert]]) -> None:
    prefix, alerts = reference
    alerted = {(a.entity_type, a.entity) for a in alerts}
    scenarios = {s for s, _ in dataset.fraud.values()}
    detected = {dataset.fraud[k][0] for k in alerted if k in dataset.fraud}
    assert detected == scenarios
    assert alerted <= set(dataset.fraud), "alert on an entity outside every scenario"
    assert all(a.level in ("high", "critical") and a.reasons for a in alerts)
    risks = _risks(kafka_bootstrap, prefix)
    peak: dict[tuple[str, str], int] = {}
    for risk in risks:
        key = (risk.entity_type, risk.entity)
        peak[key] = max(peak.get(key, 0), risk.score)
    assert all(peak[k] >= 70 for k in alerted)
    # the farm phone's SIMs get its verdict through the real fraudradar.links topic
    linked = [a for a in alerts if a.reasons[0].code == "ON_FLAGGED_DEVICE"]
    assert linked and all(dataset.fraud[(a.entity_type, a.entity)][0] in ("sim_farm_device", "sim_box", "sms_farm")
                          for a in linked)
    assert len(_read(kafka_bootstrap, prefix + topics.LINKS)) >= len(linked)
    swapped = [k for k, (s, _) in dataset.fraud.items() if s == "sim_swap_takeover" and k[0] == "number"]
    assert any(r.sim_changed_at for r in risks if (r.entity_type, r.entity) == swapped[0])


def test_kill9_and_restart_loses_no_alert(kafka_bootstrap: str, dataset: Labelled,
                                          reference: tuple[str, list[Alert]], tmp_path: Path) -> None:
    _, ref_alerts = reference
    prefix = _prefix(kafka_bootstrap)
    middle = dataset.views[len(dataset.views) // 2].occurred_ms
    first = [v for v in dataset.views if v.occurred_ms < middle]
    second = [v for v in dataset.views if v.occurred_ms >= middle]
    _produce(kafka_bootstrap, prefix, first)
    # dynamic membership: the restarted process gets the partitions once the killed member's
    # 10 s session has timed out
    scorer = Scorer(kafka_bootstrap, prefix, "crash", tmp_path / "a.log")
    try:
        scorer.wait_log("scorer started")
        _wait_committed(kafka_bootstrap, prefix, "crash")
        _produce(kafka_bootstrap, prefix, second[: len(second) // 2])
        time.sleep(0.4)   # mid-run: part of it processed, maybe some of that not committed
    finally:
        scorer.stop(signal.SIGKILL)
    # the rest arrives while the scorer is down, so the restarted one has work (and restores)
    # however fast the first one was
    _produce(kafka_bootstrap, prefix, second[len(second) // 2:])
    restarted = Scorer(kafka_bootstrap, prefix, "crash", tmp_path / "b.log")
    try:
        restore = restarted.wait_log("partition state restored")
        _wait_committed(kafka_bootstrap, prefix, "crash")
    finally:
        restarted.stop()
    assert int(restore["entities"]) > 0  # type: ignore[call-overload]
    # the models came back from the checkpoint and journal the killed one wrote (or, before its
    # first checkpoint, the journal alone), and nothing was rejected
    assert restore["models"] in ("restored", "none")
    assert not [e for e in restarted.logs() if e.get("msg") == "model checkpoint or journal rejected"]
    got = _alerts(kafka_bootstrap, prefix)
    assert {a.alert_id for a in got} == {a.alert_id for a in ref_alerts}


def _assignment(scorer: Scorer) -> set[str]:
    current: set[str] = set()
    for entry in scorer.logs():
        if entry.get("msg") == "partitions assigned":
            current |= set(entry.get("partitions", []))  # type: ignore[arg-type]
        elif entry.get("msg") == "partitions revoked":
            current -= set(entry.get("partitions", []))  # type: ignore[arg-type]
    return current


def test_two_replicas_raise_the_same_alerts_as_one(kafka_bootstrap: str, dataset: Labelled,
                                                   reference: tuple[str, list[Alert]], tmp_path: Path) -> None:
    _, ref_alerts = reference
    prefix = _prefix(kafka_bootstrap)
    replicas = [Scorer(kafka_bootstrap, prefix, "pair", tmp_path / f"{i}.log") for i in range(2)]
    try:
        for replica in replicas:
            replica.wait_log("scorer started")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # until the two split the 9 input partitions (3 views + links topics x 3)
            latest = [_assignment(r) for r in replicas]
            if all(latest) and not (latest[0] & latest[1]) and len(latest[0] | latest[1]) == 9:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the replicas did not split the partitions")
        _produce(kafka_bootstrap, prefix, dataset.views)
        _wait_committed(kafka_bootstrap, prefix, "pair")
    finally:
        for replica in replicas:
            replica.stop()
    restored = [sum(1 for e in r.logs() if e.get("msg") == "partition state restored") for r in replicas]
    assert all(n >= 1 for n in restored), restored   # both replicas owned partitions
    got = _alerts(kafka_bootstrap, prefix)
    assert {a.alert_id for a in got} == {a.alert_id for a in ref_alerts}


def test_a_commit_cut_short_on_the_topic_is_dropped_and_undone(
        kafka_bootstrap: str, dataset: Labelled, reference: tuple[str, list[Alert]], tmp_path: Path) -> None:
    """What a kill -9 during a commit's flush leaves on ``scorer-state[p]``: records after the
    last commit marker (here the manifest of a generation that never finished). The restarted
    scorer drops them, writes the committed values back, and raises the reference's alerts."""
    _, ref_alerts = reference
    prefix = _prefix(kafka_bootstrap)
    state_topic = prefix + topics.SCORER_STATE
    middle = dataset.views[len(dataset.views) // 2].occurred_ms
    _produce(kafka_bootstrap, prefix, [v for v in dataset.views if v.occurred_ms < middle])
    scorer = Scorer(kafka_bootstrap, prefix, "cut", tmp_path / "a.log")
    try:
        scorer.wait_log("scorer started")
        _wait_committed(kafka_bootstrap, prefix, "cut")
    finally:
        scorer.stop()
    forged = _MANIFEST.pack(MAGIC, 999, 10**6, 1)      # a generation none of whose pieces is there
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for partition in range(3):
        producer.send(state_topic, key=MANIFEST_KEY, value=forged, partition=partition)
    producer.flush()
    producer.close()
    # the control: read as a restore without commit markers would, the forged manifest wins
    # and the partition comes back empty
    before = _read_partitions(kafka_bootstrap, state_topic)
    legacy, marked = PartitionScorer.default(PSEUDO), PartitionScorer.default(PSEUDO)
    for key, value in before[0]:
        marked.state.apply_changelog(key, value)
        if key != COMMIT_KEY:
            legacy.state.apply_changelog(key, value)
    legacy.state.finish_restore()
    marked.state.finish_restore()
    assert sum(legacy.state.entities().values()) == 0 < sum(marked.state.entities().values())

    _produce(kafka_bootstrap, prefix, [v for v in dataset.views if v.occurred_ms >= middle])
    restarted = Scorer(kafka_bootstrap, prefix, "cut", tmp_path / "b.log")
    try:
        port = restarted.wait_log("scorer started")["http_port"]
        _wait_committed(kafka_bootstrap, prefix, "cut")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        restarted.stop()
    dropped = [e for e in restarted.logs() if str(e.get("msg", "")).startswith("a commit cut short")]
    assert sorted(int(e["partition"]) for e in dropped) == [0, 1, 2]  # type: ignore[call-overload]
    assert "fraudradar_scorer_restore_discarded_records_total 3.0" in body
    restores = [e for e in restarted.logs() if e.get("msg") == "partition state restored"]
    assert restores and all(int(e["entities"]) > 0 for e in restores)  # type: ignore[call-overload]
    assert {a.alert_id for a in _alerts(kafka_bootstrap, prefix)} == {a.alert_id for a in ref_alerts}
    # the undo landed: after the forged manifest, each partition has its committed one again
    after = _read_partitions(kafka_bootstrap, state_topic)
    for partition in range(3):
        manifests = [value for key, value in after[partition] if key == MANIFEST_KEY]
        assert manifests[-1] != forged and forged in manifests, partition


def test_a_replica_frozen_past_its_session_writes_no_state_over_its_successor(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """A zombie: replica A is frozen (SIGSTOP: a paused pod, a VM migration) in the middle of a
    backlog, longer than its session; B takes its partitions and restores them. When A resumes
    it finishes its batch and reaches its commit believing it still owns the partitions. The
    commit is a transaction (exactly-once): the broker refuses A's offsets (stale generation,
    KIP-447), A aborts and restarts from the committed state. Read committed, on every state
    partition the commits' group generations (header of each commit marker) never go down;
    read uncommitted, A's aborted changelog with its old generation is there after B's — what a
    non-transactional commit without a membership check let through."""
    prefix = _prefix(kafka_bootstrap)
    state_topic = prefix + topics.SCORER_STATE
    views = Generator(seed=13).stream(normal=3000, hours=4, fraud_start_h=2).views
    _produce(kafka_bootstrap, prefix, views)       # a backlog: A is busy when it is frozen
    ends = _ends(kafka_bootstrap, prefix)
    a = Scorer(kafka_bootstrap, prefix, "zombie", tmp_path / "a.log")
    b: Scorer | None = None
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        port = a.wait_log("scorer started")["http_port"]
        deadline = time.monotonic() + 60
        committed: dict[TopicPartition, int] = {}
        while not committed and time.monotonic() < deadline:   # until A has committed part of the backlog
            try:
                offsets = admin.list_group_offsets({"zombie": None}).get("zombie", {})
            except (CoordinatorLoadInProgressError, CoordinatorNotAvailableError):
                offsets = {}                    # the group coordinator is still loading (fresh broker)
            committed = {tp: om.offset for tp, om in offsets.items() if tp in ends}
            time.sleep(0.05)
        a.proc.send_signal(signal.SIGSTOP)
        assert sum(committed.values()) < sum(ends.values()), "A finished the backlog before the freeze"
        b = Scorer(kafka_bootstrap, prefix, "zombie", tmp_path / "b.log")
        b.wait_log("partition state restored", timeout=90)   # after A's 10 s session ran out
        time.sleep(2.0)                                      # B processes and commits
        a.proc.send_signal(signal.SIGCONT)
        reset = a.wait_log("transaction not committed; partitions restart from their committed offsets",
                           timeout=60)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        _wait_committed(kafka_bootstrap, prefix, "zombie")   # A rejoined; the two finish together
    finally:
        admin.close()
        if a.proc.poll() is None:
            a.proc.send_signal(signal.SIGCONT)
        a.stop()
        if b is not None:
            b.stop()
    assert reset["partitions"]
    assert re.search(r'fraudradar_transactions_total\{outcome="(aborted|fenced)",service="scorer"\} [1-9]', body)

    def generations(isolation: str) -> dict[int, list[int]]:
        return {partition: [int(dict(r.headers)["fraudradar.generation"]) for r in recs if r.key == COMMIT_KEY]
                for partition, recs in _records(kafka_bootstrap, state_topic, isolation).items()}

    for partition, seq in generations("read_committed").items():
        assert seq and min(seq) >= 1, (partition, seq)
        assert seq == sorted(seq), (partition, seq)          # no commit of an older generation after a newer one
    assert any(len(set(seq)) > 1 for seq in generations("read_committed").values())  # B (a later generation) wrote
    # the control: on the log, A's aborted transaction wrote its old generation after B's
    assert any(seq != sorted(seq) for seq in generations("read_uncommitted").values())
