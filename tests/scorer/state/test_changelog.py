"""The bundled state changelog restores exactly the committed state, before and after compaction."""

from __future__ import annotations

import random

import pytest

from services.scorer.layout import DEVICE, NUMBER
from services.scorer.state import StateStore
from services.scorer.state.changelog import (
    DELTA_PREFIX,
    MANIFEST_KEY,
    SNAPSHOT_PREFIX,
    ChangelogReader,
    ChangelogWriter,
    pack_pieces,
    unpack_entries,
)

Log = list[tuple[bytes, bytes | None]]


def _value(size: int, rng: random.Random) -> bytes:
    return rng.randbytes(8) + bytes(size - 8)


def _mutate(store: StateStore, rng: random.Random, universe: list[bytes], n: int) -> None:
    for _ in range(n):
        key = rng.choice(universe)
        table = store.numbers if key[0] & 1 else store.devices
        if rng.random() < 0.1:
            if table.records.pop(key, None) is not None:
                table.dirty.add(key)
        else:
            table.records[key] = _value(table.layout.size, rng)
            table.dirty.add(key)


def _snapshot(store: StateStore) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    return dict(store.numbers.records), dict(store.devices.records)


def _compact(log: Log) -> Log:
    """Kafka compaction taken to the limit: the latest record per key, tombstones removed."""
    latest: dict[bytes, int] = {}
    for i, (key, _) in enumerate(log):
        latest[key] = i
    return [log[i] for i in sorted(latest.values()) if log[i][1] is not None]


def _restore(log: Log, pace: int = 4) -> tuple[StateStore, ChangelogWriter]:
    store, writer, reader = StateStore(), ChangelogWriter(pace=pace, piece_bytes=4096), ChangelogReader()
    for key, value in log:
        assert reader.add(key, value)
    reader.apply(store, writer)
    return store, writer


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_restore_equals_state_at_every_commit_with_and_without_compaction(seed: int) -> None:
    rng = random.Random(seed)
    universe = [rng.randbytes(16) for _ in range(400)]
    store, writer = StateStore(), ChangelogWriter(pace=4, piece_bytes=4096)
    log: Log = []
    for commit in range(60):
        _mutate(store, rng, universe, rng.choice([0, 3, 30, 300]))
        log += writer.records(store)
        expected = _snapshot(store)
        for variant in (log, _compact(log)):
            restored, _ = _restore(variant)
            assert _snapshot(restored) == expected, f"commit {commit}"
    kinds = {key[:2] for key, _ in log}
    assert {DELTA_PREFIX, SNAPSHOT_PREFIX, MANIFEST_KEY} <= kinds
    # compaction keeps about one copy of the state plus recent deltas, not the history
    live = sum(len(v) for _, v in _compact(log) if v is not None)
    assert live < 4 * (len(store.numbers) * NUMBER.size + len(store.devices) * DEVICE.size) + 65536


def test_a_restored_writer_continues_after_a_crash_mid_generation() -> None:
    rng = random.Random(9)
    universe = [rng.randbytes(16) for _ in range(300)]
    store, writer = StateStore(), ChangelogWriter(pace=8, piece_bytes=2048)
    log: Log = []
    for _ in range(10):
        _mutate(store, rng, universe, 40)
        log += writer.records(store)
    # a generation is in progress (pace 8, small deltas); the process dies here
    expected = _snapshot(store)
    restored, resumed = _restore(_compact(log), pace=8)
    assert _snapshot(restored) == expected
    for _ in range(30):
        _mutate(restored, rng, universe, rng.choice([5, 50, 200]))
        log += resumed.records(restored)
        again, _ = _restore(_compact(log), pace=8)
        assert _snapshot(again) == _snapshot(restored)


def test_pieces_stay_under_the_size_bound_and_round_trip() -> None:
    rng = random.Random(4)
    entries = [(b"n" + rng.randbytes(16), None if i % 7 == 0 else rng.randbytes(NUMBER.size)) for i in range(500)]
    pieces = list(pack_pieces(3, entries, 8192))
    assert len(pieces) > 1 and all(len(p) < 8192 + NUMBER.size + 64 for p in pieces)
    assert [e for p in pieces for e in unpack_entries(p)] == entries


def test_a_forgotten_entity_leaves_no_value_once_compacted() -> None:
    rng = random.Random(5)
    universe = [rng.randbytes(16) for _ in range(200)]
    store, writer = StateStore(), ChangelogWriter(pace=4, piece_bytes=2048)
    log: Log = []
    for _ in range(6):
        _mutate(store, rng, universe, 150)
        log += writer.records(store)
    victim = next(iter(store.numbers.records))
    del store.numbers.records[victim]
    store.numbers.dirty.add(victim)
    for _ in range(6):           # quiet afterwards: a few more commits, nothing else deleted
        store.devices.records[universe[0]] = bytes(DEVICE.size)
        store.devices.dirty.add(universe[0])
        log += writer.records(store)
    with_values = {key for _, value in _compact(log) if value is not None and not _.startswith(MANIFEST_KEY)
                   for key, v in unpack_entries(value) if v is not None}
    assert b"n" + victim not in with_values
    assert _snapshot(_restore(_compact(log))[0]) == _snapshot(store)
