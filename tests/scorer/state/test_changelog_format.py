"""The changelog's topic records, exactly: which keys each commit writes (deltas, snapshot pieces,
manifest, tombstones), when a generation starts and how fast it is written, the byte format of a
piece, and how the reader rebuilds the store and continues the numbering. Found by mutation
testing (docs/mutation.md): the round-trip tests alone let off-by-one numbering, changed
generation timing and a wrong piece format through, as long as a restore still matched."""

from __future__ import annotations

import struct
from typing import Any

from services.scorer.layout import LINK_TAIL, NUMBER
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


def _key(i: int) -> bytes:
    return i.to_bytes(16, "big")


def _set(store: StateStore, ids: range | list[int], fill: int = 1) -> None:
    for i in ids:
        store.numbers.records[_key(i)] = bytes([fill]) * NUMBER.size
        store.numbers.dirty.add(_key(i))


def _delete(store: StateStore, i: int) -> None:
    del store.numbers.records[_key(i)]
    store.numbers.dirty.add(_key(i))


def _delta(seq: int) -> bytes:
    return DELTA_PREFIX + struct.pack(">Q", seq)


def _piece(gen: int, piece: int) -> bytes:
    return SNAPSHOT_PREFIX + struct.pack(">QI", gen, piece)


def _manifest(gen: int, start: int, pieces: int) -> bytes:
    return struct.pack("<4sQQQ", b"FRS1", gen, start, pieces)


def _commit(records: Log) -> dict[str, Any]:
    """One commit's records, read as the documented topic format."""
    out: dict[str, Any] = {"deltas": [], "pieces": [], "manifest": None, "tombstones": []}
    for key, value in records:
        if value is None:
            out["tombstones"].append(key)
        elif key == MANIFEST_KEY:
            out["manifest"] = struct.unpack("<4sQQQ", value)[1:]
        elif key.startswith(DELTA_PREFIX):
            out["deltas"].append(struct.unpack(">Q", key[2:])[0])
        else:
            gen, piece = struct.unpack(">QI", key[2:])
            out["pieces"].append((gen, piece, len(list(unpack_entries(value)))))
    return out


def _restore(log: Log, writer: ChangelogWriter | None = None) -> tuple[StateStore, ChangelogWriter, int]:
    store, writer, reader = StateStore(), writer or ChangelogWriter(pace=1, piece_bytes=1 << 20), ChangelogReader()
    for key, value in log:
        reader.add(key, value)
    applied = reader.apply(store, writer)
    return store, writer, applied


def test_a_generation_starts_when_the_deltas_since_the_last_one_match_the_state() -> None:
    store, writer = StateStore(), ChangelogWriter(pace=1, piece_bytes=1 << 20)
    _set(store, range(10))
    first = _commit(writer.records(store))
    # the first commit's 10 changes equal the state: a full generation at once
    assert first == {"deltas": [0], "pieces": [(0, 0, 10)], "manifest": (0, 0, 1), "tombstones": []}
    _set(store, range(9), fill=2)
    # 9 changed entries since the generation started: fewer than the state's 10, no generation
    assert _commit(writer.records(store)) == {"deltas": [1], "pieces": [], "manifest": None, "tombstones": []}
    _set(store, [9], fill=2)
    # 10 now: generation 1 starts at this commit's delta (2) and makes generation 0 and older deltas obsolete
    assert _commit(writer.records(store)) == {"deltas": [2], "pieces": [(1, 0, 10)], "manifest": (1, 2, 1),
                                             "tombstones": [_piece(0, 0), _delta(0), _delta(1)]}
    assert writer.records(store) == []           # an idle partition writes nothing
    _set(store, range(10), fill=3)
    assert _commit(writer.records(store)) == {"deltas": [3], "pieces": [(2, 0, 10)], "manifest": (2, 3, 1),
                                             "tombstones": [_piece(1, 0), _delta(2)]}


def test_a_single_entity_state_starts_a_generation_at_each_change() -> None:
    store, writer = StateStore(), ChangelogWriter(pace=1, piece_bytes=1 << 20)
    _set(store, [7])
    assert _commit(writer.records(store))["manifest"] == (0, 0, 1)
    _set(store, [7], fill=2)
    assert _commit(writer.records(store)) == {"deltas": [1], "pieces": [(1, 0, 1)], "manifest": (1, 1, 1),
                                             "tombstones": [_piece(0, 0), _delta(0)]}


def test_a_generation_is_written_over_pace_commits_unless_a_commit_changes_more() -> None:
    store, writer = StateStore(), ChangelogWriter(pace=4, piece_bytes=1 << 20)
    _set(store, range(100))
    # 100 entities changed in this commit: the generation takes them all now, not 100/4
    assert _commit(writer.records(store))["pieces"] == [(0, 0, 100)]
    _set(store, range(99), fill=2)
    assert _commit(writer.records(store))["pieces"] == []
    _set(store, [99], fill=2)
    commits = [_commit(writer.records(store)) for _ in range(4)]    # one change, then idle commits
    assert [c["pieces"] for c in commits] == [[(1, 0, 25)], [(1, 1, 25)], [(1, 2, 25)], [(1, 3, 25)]]
    assert [c["manifest"] for c in commits] == [None, None, None, (1, 2, 4)]
    assert writer.records(store) == []


def test_forgetting_an_entity_starts_a_generation_written_at_one_entity_per_commit_at_least() -> None:
    store, writer = StateStore(), ChangelogWriter(pace=4, piece_bytes=1 << 20)
    _set(store, range(3))
    assert _commit(writer.records(store))["manifest"] == (0, 0, 1)
    _delete(store, 0)
    # the deletion alone (1 entry, state 2) starts a generation: its old values must go
    assert _commit(writer.records(store)) == {"deltas": [1], "pieces": [(1, 0, 1)], "manifest": None,
                                             "tombstones": []}
    assert _commit(writer.records(store)) == {"deltas": [], "pieces": [(1, 1, 1)], "manifest": (1, 1, 2),
                                             "tombstones": [_piece(0, 0), _delta(0)]}


def test_a_generation_larger_than_a_piece_is_numbered_piece_by_piece() -> None:
    store, writer = StateStore(), ChangelogWriter(pace=1, piece_bytes=4 * NUMBER.size)
    _set(store, range(10))
    out = _commit(writer.records(store))
    assert [p[:2] for p in out["pieces"]] == [(0, i) for i in range(len(out["pieces"]))]
    assert len(out["pieces"]) > 1 and sum(p[2] for p in out["pieces"]) == 10
    assert out["manifest"] == (0, 0, len(out["pieces"]))


def test_piece_format_is_the_documented_bytes() -> None:
    n, d = b"n" + _key(1), b"d" + _key(2)
    [piece] = pack_pieces(7, [(n, None), (d, b"\x01\x02")], 1 << 20)
    assert piece == (b"FRS1" + (7).to_bytes(8, "little") + bytes([1, 17, 0, 0]) + n
                     + bytes([0, 17, 2, 0]) + d + b"\x01\x02")


def test_pieces_close_exactly_at_the_size_bound() -> None:
    keys = [b"n" + _key(i) for i in range(64)]
    head = 12
    # a tombstone entry is 4 + 17 bytes: 22 of them fill head + 22 x 21 exactly, then a new piece starts
    tombstones = list(pack_pieces(0, [(k, None) for k in keys[:44]], head + 22 * 21))
    assert [len(list(unpack_entries(p))) for p in tombstones] == [22, 22]
    assert all(len(p) == head + 22 * 21 for p in tombstones)
    # a record entry is 4 + 17 + 10 bytes: 32 of them fill a piece exactly
    records = list(pack_pieces(0, [(k, bytes(10)) for k in keys], head + 32 * 31))
    assert [len(list(unpack_entries(p))) for p in records] == [32, 32]
    assert list(pack_pieces(0, [], 100)) == []


def test_the_reader_takes_only_its_own_keys_and_answers_what_it_holds() -> None:
    reader = ChangelogReader()
    assert not ChangelogReader.owns(b"other") and not reader.add(b"other", b"x")
    assert ChangelogReader.owns(MANIFEST_KEY) and ChangelogReader.owns(_delta(0)) and ChangelogReader.owns(_piece(0, 0))
    assert reader.committed(MANIFEST_KEY) is None and reader.committed(_delta(0)) is None
    assert reader.add(_delta(3), None)                   # a tombstone of a key never seen
    assert reader.add(MANIFEST_KEY, None)                # a manifest tombstone is ignored
    manifest = _manifest(0, 0, 1)
    assert reader.add(MANIFEST_KEY, manifest) and reader.committed(MANIFEST_KEY) == manifest
    assert reader.add(MANIFEST_KEY, b"short") and reader.committed(MANIFEST_KEY) == manifest
    assert reader.add(_delta(0), b"v") and reader.committed(_delta(0)) == b"v"
    assert reader.add(_delta(0), None) and reader.committed(_delta(0)) is None


def test_restore_without_a_manifest_applies_the_deltas_and_numbers_on() -> None:
    store, writer, applied = _restore([])
    assert (applied, len(store), writer.next_seq, writer.next_gen, writer.complete_gen) == (0, 0, 0, 0, -1)
    value = bytes([5]) * NUMBER.size
    [piece] = pack_pieces(0, [(b"n" + _key(1), value), (b"n" + _key(2), value)], 1 << 20)
    store, writer, applied = _restore([(_delta(0), piece)])
    assert applied == 2 and store.numbers.records == {_key(1): value, _key(2): value}
    assert (writer.next_seq, writer.next_gen, writer.complete_gen, writer.complete_start_seq) == (1, 0, -1, 0)


def test_restore_counts_every_entry_and_skips_what_it_cannot_read() -> None:
    value = bytes([5]) * NUMBER.size
    legacy = bytes([6]) * NUMBER.legacy_size
    first = next(pack_pieces(0, [(b"x" + _key(1), b"abc"), (b"x" + _key(2), None), (b"n" + _key(3), value),
                                 (b"n" + _key(9), value)], 1 << 20))
    second = next(pack_pieces(1, [(b"n" + _key(4), legacy), (b"n" + _key(5), b"odd size"), (b"n" + _key(9), None),
                                  (b"n" + _key(6), value)], 1 << 20))
    foreign = b"XXXX" + bytes(8) + bytes([0, 17, 1, 0]) + b"n" + _key(7) + b"z"
    store, _, applied = _restore([(_delta(0), first), (_delta(1), second), (_delta(2), foreign)])
    # 4 + 4 entries; an unknown table or a value of no known size is skipped, a foreign piece is not read
    assert applied == 8
    # the entries after the unknown table's are read; a record written before the link tail is
    # padded with empty tails (link tail, change tail) to today's size; a tombstone removes its record
    assert len(legacy) + LINK_TAIL.size < NUMBER.size
    assert store.numbers.records == {_key(3): value, _key(4): legacy + bytes(NUMBER.size - len(legacy)),
                                     _key(6): value}


def test_a_restored_writer_continues_the_numbering_and_rewrites_a_generation() -> None:
    store, writer = StateStore(), ChangelogWriter(pace=1, piece_bytes=1 << 20)
    log: Log = []
    for fill in (1, 2, 3):
        _set(store, range(10), fill=fill)
        log += writer.records(store)
    restored, resumed, _ = _restore(log)
    assert restored.numbers.records == store.numbers.records
    assert (resumed.next_seq, resumed.next_gen, resumed.complete_gen, resumed.complete_start_seq) == (3, 3, 2, 2)
    # nothing changed, but the new owner writes a fresh generation (a purge may have been cut short)
    # (it starts after the last delta, so that delta is obsolete once it completes)
    assert _commit(resumed.records(restored)) == {"deltas": [], "pieces": [(3, 0, 10)], "manifest": (3, 3, 1),
                                                 "tombstones": [_piece(2, 0), _delta(2)]}


def test_records_a_newer_generation_made_obsolete_are_tombstoned_by_the_next_owner() -> None:
    value = bytes([5]) * NUMBER.size
    [old] = pack_pieces(0, [(b"n" + _key(1), value)], 1 << 20)
    [piece] = pack_pieces(1, [(b"n" + _key(1), value)], 1 << 20)
    log: Log = [(_delta(0), old), (_piece(0, 0), old), (_delta(1), old), (_piece(1, 0), piece),
                (MANIFEST_KEY, _manifest(1, 1, 1)), (_piece(2, 0), piece)]   # gen 2: cut short by a crash
    store, writer, _ = _restore(log)
    assert store.numbers.records == {_key(1): value}
    assert (writer.next_seq, writer.next_gen) == (2, 3)
    out = writer.records(store)
    assert _commit(out)["tombstones"][:3] == [_delta(0), _piece(0, 0), _piece(2, 0)]


def test_keys_an_unfinished_commit_reserved_are_never_reused() -> None:
    reader = ChangelogReader()
    reader.reserve([_delta(5), _delta(2), _piece(3, 1), _piece(1, 9),
                    DELTA_PREFIX + bytes(12),        # not a delta key of this format (too long)
                    SNAPSHOT_PREFIX + (99).to_bytes(8, "big"),   # not a piece key (too short), nor a delta
                    b"other"])
    store, writer = StateStore(), ChangelogWriter(pace=1, piece_bytes=1 << 20)
    reader.apply(store, writer)
    assert (writer.next_seq, writer.next_gen) == (6, 4)
    _set(store, range(2))
    assert _commit(writer.records(store)) == {"deltas": [6], "pieces": [(4, 0, 2)], "manifest": (4, 6, 1),
                                             "tombstones": []}
