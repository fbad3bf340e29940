"""A commit a crash cut short: a restore takes only what a commit marker closes, and undoes the rest.

The producer is idempotent, so a state partition receives a prefix of what one commit sent.
Each test cuts a commit's records at every point (what landed before the kill -9), restores a
new engine from the log, lets it take the views the group redelivers, and compares it with an
engine that never stopped. Without the marker (the control: the same log as a restore before
markers read it) some cuts leave entity records of the unfinished commit without the journal of
what the models learned with them, and later scores differ.
"""

from __future__ import annotations

from pathlib import Path

from services.common.records import View
from services.scorer.partition import PartitionScorer
from services.scorer.state import COMMIT_KEY, COMMIT_MARKER, MODELS_KEY
from services.scorer.state.changelog import DELTA_PREFIX
from services.scorer.state.modellog import is_journal_key
from tests.scorer.state.test_modellog import Log, compacted, crash_run, engine, signature
from tests.scorer.state.test_modellog import restore as restore_log

EVERY = 500          # views per commit


def run_to_cut_commit(policy: Path, views: list[View], crash_at: int = 12,
                      checkpoint_at: int = 3) -> tuple[Log, int, Log]:
    """Commits every EVERY views; commit ``crash_at`` is the one being flushed at the kill.
    Returns the log of the complete commits, the committed offset and that commit's records."""
    log, committed, eng = crash_run(policy, views, every=EVERY, checkpoint_at=checkpoint_at,
                                    crash_after=crash_at - 1)
    for i in range(committed + EVERY // 3, committed + EVERY):     # the rest of the cut commit
        eng.process(views[i], offset=i)
    return log, committed, eng.state.commit_records()


def restore(policy: Path, log: Log, *, markers: bool = True) -> PartitionScorer:
    eng = restore_log(policy, log, markers=markers)
    eng.state.restore_models()
    return eng


def models_of(eng: PartitionScorer, probes: list[dict[str, float]]) -> list[object]:
    """What the models say about fixed feature vectors (raw score and calibrated tail per
    detector) and how much they learned: equal only if they learned the same points in order."""
    out: list[object] = []
    for entity_type, models in eng.state.models.items():
        for name, detector in models.detectors.items():
            out.append((entity_type, name, getattr(detector.detector, "n_learned", None)))
            if entity_type == "number":
                out += [(detector.raw_one(f), detector.calibrator.tail(detector.raw_one(f))) for f in probes]
    return out


def probes_of(eng: PartitionScorer, views: list[View]) -> list[dict[str, float]]:
    """Feature vectors of every 40th number of the stream, as ``eng`` knows them."""
    numbers = list(dict.fromkeys(v.entity for v in views if v.entity_type == "number"))[::40]
    return [f for e in numbers if (f := eng.features_of("number", e)) is not None]


def replay(eng: PartitionScorer, views: list[View], start: int) -> list[tuple[object, ...]]:
    """The group redelivers from the committed offset."""
    return [signature(eng.process(v, offset=i)) for i, v in enumerate(views) if i >= start]


def test_every_cut_of_a_commit_restores_exactly(policy: Path, views: list[View]) -> None:
    whole = engine(policy)
    expected = [signature(whole.process(v, offset=i)) for i, v in enumerate(views)]
    log, committed, cut_commit = run_to_cut_commit(policy, views)
    marker = cut_commit.index((COMMIT_KEY, COMMIT_MARKER))
    kinds = [key[:2] if not is_journal_key(key) else b"j" for key, _ in cut_commit[:marker]]
    assert DELTA_PREFIX in kinds and b"j" in kinds, kinds          # entity records, then the journal
    after = committed + EVERY                  # views the cut commit covers are skipped once it landed
    probes = probes_of(whole, views)
    final = models_of(whole, probes)
    diverged = 0
    for cut in range(len(cut_commit) + 1):
        landed = log + cut_commit[:cut]
        restored = restore(policy, landed)
        got = replay(restored, views, committed)
        assert models_of(restored, probes) == final, cut
        if cut <= marker:                      # unfinished: the state is that of the commit before
            assert restored.state.discarded_records == sum(1 for _, v in cut_commit[:cut] if v is not None)
            assert got == expected[committed:], cut
        else:                                  # the commit landed (tombstones may not have)
            assert restored.state.discarded_records == 0
            assert got[after - committed:] == expected[after:], cut
        # the control: read as before commit markers, whatever landed counts
        legacy = restore(policy, landed, markers=False)
        replay(legacy, views, committed)
        diverged += models_of(legacy, probes) != final
    assert diverged > 0, "some cut must leave the models behind the entity state"


def test_the_undo_survives_compaction_and_a_second_crash(policy: Path, views: list[View]) -> None:
    whole = engine(policy)
    expected = [signature(whole.process(v, offset=i)) for i, v in enumerate(views)]
    log, committed, cut_commit = run_to_cut_commit(policy, views)
    first_journal = next(i for i, (key, _) in enumerate(cut_commit) if is_journal_key(key))
    tail = cut_commit[:first_journal]          # entity records landed, the journal did not
    # compaction never touches the newest records (min.compaction.lag.ms), the older ones it may
    landed = compacted(log) + tail
    restored = restore(policy, landed)
    assert restored.state.discarded_records == len(tail)
    for i in range(committed, committed + EVERY):
        restored.process(views[i], offset=i)
    second = restored.state.commit_records()
    undo = second[:len(tail)]
    assert [key for key, _ in undo] == list(dict.fromkeys(key for key, _ in tail))
    assert all(value is None for key, value in undo if key.startswith(DELTA_PREFIX))   # new keys: tombstoned
    assert any(key == MODELS_KEY for key, _ in second), "a fresh checkpoint after a discarded tail"
    # sequence numbers the discarded commit used are not written again
    assert not {key for key, _ in tail} & {key for key, v in second[len(undo):] if v is not None}
    # a second kill -9 during that commit, at every point: still the state of the last commit
    marker = second.index((COMMIT_KEY, COMMIT_MARKER))
    for cut in range(0, len(second) + 1, 3):
        again = restore(policy, landed + second[:cut])
        # unfinished again: the first tail and what landed of this commit are dropped together
        unfinished = len(tail) + sum(1 for _, v in second[:cut] if v is not None)
        assert again.state.discarded_records == (0 if cut > marker else unfinished)
        # its offsets were not committed either: the group redelivers from the same point
        assert replay(again, views, committed)[EVERY:] == expected[committed + EVERY:], cut
    # the recovered commit landed, then everything is compacted: same again
    settled = compacted(landed + second)
    assert replay(restore(policy, settled), views, committed)[EVERY:] == expected[committed + EVERY:]


def test_commit_records_order_and_an_idle_engine(policy: Path, views: list[View]) -> None:
    eng = engine(policy)
    for i, v in enumerate(views[:600]):
        eng.process(v, offset=i)
    records = eng.state.commit_records(checkpoint=True)
    keys = [key for key, _ in records]
    marker = keys.index(COMMIT_KEY)
    assert all(value is not None for _, value in records[:marker])
    assert all(value is None for _, value in records[marker + 1:])
    assert eng.state.commit_records() == [] and eng.state.commit_records(checkpoint=True) == []
    # a log written before markers existed is taken whole
    legacy = [(key, value) for key, value in records if key != COMMIT_KEY]
    old = restore(policy, legacy)
    assert old.state.discarded_records == 0 and old.state.entities() == eng.state.entities()


def test_the_undo_keeps_a_dropped_commit_out_when_the_next_commit_ends_elsewhere(
        policy: Path, views: list[View]) -> None:
    """The restored engine's next commit covers fewer views than the one cut short (poll batches
    differ): without the undo, entity records of the dropped commit would count once the next
    marker follows them, ahead of the committed offsets, and their views would never be learned."""
    whole = engine(policy)
    for i, v in enumerate(views):
        whole.process(v, offset=i)
    probes = probes_of(whole, views)
    final = models_of(whole, probes)
    log, committed, cut_commit = run_to_cut_commit(policy, views)
    tail = cut_commit[:next(i for i, (key, _) in enumerate(cut_commit) if is_journal_key(key))]
    half = committed + EVERY // 2
    outcomes = []
    for undo in (True, False):
        restored = restore(policy, log + tail)
        if not undo:
            restored.state.recovery.undo = []    # the control: a restore that only drops the tail
        for i in range(committed, half):
            restored.process(views[i], offset=i)
        second = restored.state.commit_records()      # lands whole; the process dies before the next
        again = restore(policy, log + tail + second)
        for i in range(half, len(views)):       # the group redelivers from the new commit
            again.process(views[i], offset=i)
        outcomes.append(models_of(again, probes) == final)
    assert outcomes == [True, False]
