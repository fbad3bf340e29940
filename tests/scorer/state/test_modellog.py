"""The models' journal: a restore continues the models exactly where the last commit left them.

Each test drives an engine through commits the way the service does (entity changelog, then
``model_records``), "crashes" it between commits, restores a new engine from the written log
(as written, and as Kafka's compaction leaves it) and compares it with an engine that never
stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.pseudonym import Pseudonymizer, parse_key
from services.common.records import Feedback, View
from services.scorer.output import EngineOutput
from services.scorer.partition import PartitionScorer
from services.scorer.state import COMMIT_KEY, COMMIT_MARKER, MODELS_KEY, modellog
from services.scorer.state.modellog import is_journal_key
from tests.conftest import TEST_PSEUDONYM_KEY

PSEUDO = Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY))
Log = list[tuple[bytes, bytes | None]]


def engine(policy: Path, version: str | None = None) -> PartitionScorer:
    eng = PartitionScorer.default(PSEUDO, policy_path=policy, journal=True)
    if version is not None:
        eng.state.model_version = version     # what the checkpoint and journal are stamped with
    return eng


def commit(eng: PartitionScorer, log: Log, *, checkpoint: bool = False) -> None:
    """Step 3 of the service's commit path: entity records, the models' records, the commit
    marker, tombstones (``commit_records``)."""
    log.extend(eng.state.commit_records(checkpoint=checkpoint))


def compacted(log: Log) -> Log:
    """What Kafka's compaction leaves: the last record of each key, in log order, no tombstones."""
    last = {key: i for i, (key, _) in enumerate(log)}
    return [log[i] for i in sorted(last.values()) if log[i][1] is not None]


def restore(policy: Path, log: Log, *, journal: bool = True, markers: bool = True,
            version: str | None = None) -> PartitionScorer:
    """A fresh engine restored from ``log``; without the journal's records, or without the commit
    markers (read as a restore before markers did), when asked."""
    eng = engine(policy, version)
    for key, value in log:
        if (journal or not is_journal_key(key)) and (markers or key != COMMIT_KEY):
            eng.state.apply_changelog(key, value)
    eng.state.finish_restore()
    return eng


def signature(out: EngineOutput) -> tuple[object, ...]:
    return out.score, sorted(out.model_scores.items()), [a.alert_id for a in out.alerts]


def crash_run(policy: Path, views: list[View], *, every: int = 500, checkpoint_at: int = 3,
              crash_after: int = 14) -> tuple[Log, int, PartitionScorer]:
    """Commits every ``every`` views, one checkpoint at commit ``checkpoint_at``; the process dies
    ``every // 3`` views after commit ``crash_after``. Returns the log, the committed offset and
    the engine as it stood at that last commit's point."""
    eng = engine(policy)
    log: Log = []
    n_commits = 0
    for i, view in enumerate(views):
        eng.process(view, offset=i)
        if (i + 1) % every == 0:
            n_commits += 1
            commit(eng, log, checkpoint=n_commits == checkpoint_at)
            if n_commits == crash_after:
                committed = i + 1
                for j in range(committed, committed + every // 3):   # processed, never committed
                    eng.process(views[j], offset=j)
                return log, committed, eng
    raise AssertionError("stream too short for the crash point")


@pytest.mark.parametrize("compact", [False, True], ids=["as-written", "compacted"])
def test_a_restore_behind_its_checkpoint_scores_exactly_like_no_crash(
        policy: Path, views: list[View], compact: bool) -> None:
    whole = engine(policy)
    expected = [signature(whole.process(v, offset=i)) for i, v in enumerate(views)]
    log, committed, _ = crash_run(policy, views)
    log = compacted(log) if compact else log
    restored = restore(policy, log)
    report = restored.state.restore_models()
    assert report.checkpoint == "restored" and report.error is None
    assert report.batches >= 10 and report.entries > 0       # 11 commits of learning after the checkpoint
    # the group redelivers from the committed offset; some views were applied before the crash
    got = [signature(restored.process(v, offset=i)) for i, v in enumerate(views) if i >= committed]
    assert sum(1 for s in expected[committed:] if s[1]) > 100     # warm models scored these views
    assert got == expected[committed:]

    # control: the same restore without the journal (the checkpoint alone, as before the
    # journal existed) leaves the models behind the state, and model scores differ
    behind = restore(policy, log, journal=False)
    assert behind.state.restore_models().entries == 0
    lagging = [signature(behind.process(v, offset=i)) for i, v in enumerate(views) if i >= committed]
    assert sum(a[1] != b[1] for a, b in zip(lagging, expected[committed:], strict=True)) > 0


def test_feedback_and_the_sweep_schedule_come_back_as_of_the_last_commit(policy: Path, views: list[View]) -> None:
    eng = engine(policy)
    log: Log = []
    half = len(views) // 2
    for i, v in enumerate(views[:half]):
        eng.process(v, offset=i)
    commit(eng, log, checkpoint=True)
    entities = sorted({v.entity for v in views[:half] if v.entity_type == "number"})[:12]
    for n, entity in enumerate(entities):     # partner reports after the checkpoint
        eng.learn_feedback(Feedback(report_id=f"r{n}", partner="bank", entity_type="number", entity=entity,
                                    label="confirmed_fraud" if n % 2 else "false_positive",
                                    reported_at="2026-09-21T00:00:00Z"))
        eng.state.feedback_offset = n + 1
    for i, v in enumerate(views[half:], half):
        eng.process(v, offset=i)
    commit(eng, log)
    restored = restore(policy, compacted(log))
    report = restored.state.restore_models()
    assert report.entries >= len(entities)
    assert restored.state.feedback_offset == len(entities)
    assert restored.state.next_sweep_ms == eng.state.next_sweep_ms
    learner, original = restored.state.models["number"].feedback, eng.state.models["number"].feedback
    assert learner.ready
    probe = eng.features_of("number", entities[1]) or {}
    assert learner.proba_one(probe) == original.proba_one(probe)


def test_a_checkpoint_tombstones_the_journal_it_includes(policy: Path, views: list[View]) -> None:
    eng = engine(policy)
    log: Log = []
    for i, v in enumerate(views[:3000]):
        eng.process(v, offset=i)
        if (i + 1) % 500 == 0:
            commit(eng, log)
    journal = [key for key, value in log if is_journal_key(key) and value is not None]
    assert len(journal) == 6
    records = eng.state.model_records(checkpoint=True)
    assert records[0][0] == MODELS_KEY
    assert sorted(key for key, value in records[1:] if value is None) == sorted(journal)
    # nothing learned and nothing moved since: an idle engine writes nothing, not even a checkpoint
    assert eng.state.model_records() == []
    assert eng.state.model_records(checkpoint=True) == []
    log.extend([records[0], (COMMIT_KEY, COMMIT_MARKER), *records[1:]])   # as commit_records orders them
    restored = restore(policy, compacted(log))
    report = restored.state.restore_models()
    assert (report.checkpoint, report.batches) == ("restored", 0)
    assert restored.state.journal.next_seq == eng.state.journal.next_seq    # sequence numbers never repeat


def test_an_engine_nobody_journals_for_keeps_no_journal(policy: Path, views: list[View]) -> None:
    """A backtest's engine never writes a changelog: it must not accumulate what it learned."""
    eng = PartitionScorer.default(PSEUDO, policy_path=policy)
    for i, v in enumerate(views):
        eng.process(v, offset=i)
    assert eng.counters["learned"] > 500 and len(eng.state.journal) == 0


def test_large_commits_split_into_several_records(policy: Path, views: list[View],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modellog, "BATCH_ENTRIES", 50)
    whole = engine(policy)
    expected = [signature(whole.process(v, offset=i)) for i, v in enumerate(views)]
    eng = engine(policy)
    log: Log = []
    half = len(views) // 2
    for i, v in enumerate(views[:half]):
        eng.process(v, offset=i)
    n_learned = len(eng.state.journal)
    commit(eng, log)
    assert sum(1 for key, _ in log if is_journal_key(key)) == -(-n_learned // 50)
    restored = restore(policy, log)
    assert restored.state.restore_models().entries == n_learned
    assert [signature(restored.process(v, offset=i)) for i, v in enumerate(views) if i >= half] == expected[half:]


def test_a_tampered_journal_record_is_reported_and_a_fresh_checkpoint_follows(
        policy: Path, views: list[View]) -> None:
    log, _, _ = crash_run(policy, views, crash_after=6)
    position = max(i for i, (key, value) in enumerate(log) if is_journal_key(key) and value is not None)
    key, value = log[position]
    assert value is not None
    log[position] = (key, value[:-1] + bytes([value[-1] ^ 1]))
    restored = restore(policy, log)
    report = restored.state.restore_models()
    assert report.checkpoint == "restored" and report.error is not None and "signature" in report.error
    assert report.outcome == "journal_error"
    assert report.batches == 2          # the two good batches before the forged one
    records = restored.state.model_records()
    assert records[0][0] == MODELS_KEY  # the log is made consistent at the next commit
    assert (key, None) in records


def test_a_missing_batch_stops_the_replay_there(policy: Path, views: list[View]) -> None:
    """A batch that never landed (a kill during a flush): later batches would teach the models
    out of order, so the replay stops before the gap and a fresh checkpoint follows."""
    log, _, _ = crash_run(policy, views, crash_after=6)
    checkpoint = max(i for i, (key, _) in enumerate(log) if key == MODELS_KEY)
    after = [i for i, (key, value) in enumerate(log) if i > checkpoint and is_journal_key(key) and value is not None]
    assert len(after) == 3                     # commits 4, 5 and 6
    missing = log.pop(after[1])[0]
    restored = restore(policy, log)
    report = restored.state.restore_models()
    assert report.batches == 1 and report.error is not None and "missing" in report.error
    records = restored.state.model_records()
    assert records[0][0] == MODELS_KEY
    assert restored.state.journal.next_seq > int.from_bytes(missing[-8:], "big")


def test_models_of_another_version_are_not_restored(policy: Path, views: list[View]) -> None:
    log, _, _ = crash_run(policy, views, crash_after=5)
    restored = restore(policy, log, version="another-model-version")
    report = restored.state.restore_models()
    assert (report.checkpoint, report.batches, report.entries) == ("other_version", 0, 0)
    assert report.outcome == "other_version"
    assert restored.state.model_records()[0][0] == MODELS_KEY
