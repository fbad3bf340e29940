"""The state changelog of one partition: delta bundles plus rolling snapshot generations.

Why not one compacted record per entity: kafka-python spends tens of µs of pure Python per
produced record, so an entity-keyed changelog would pay that for every entity changed between
two commits — at a million entities that is most views, and it would cap the scorer's
throughput before any scoring (docs/scorer.md "Measured"). Restoring a million single records
costs the same per-record overhead.
This module keeps the same guarantees with a few large records per commit:

* **delta** ``D<seq>``: the records (or tombstones) of every entity changed since the last
  commit, packed into pieces of at most ``piece_bytes``;
* **snapshot piece** ``S<gen><piece>``: generation ``gen`` is a full copy of the state,
  written over one or more commits from the key list frozen when the generation started (each
  piece holds the entities' values *at the commit it is written*);
* **manifest** ``M``: the latest *complete* generation and the first delta sequence number
  written at or after its start;
* tombstones for records a complete generation made obsolete (older generations' pieces and
  deltas before its start), so compaction removes them.

Restore = in offset order, the pieces of the manifest's generation and every delta from its
start sequence on (pieces and deltas hold values "as of" the commit that wrote them, so
offset order is time order). Why that is the state at the last commit: an entity alive when the
generation froze its keys is in one of its pieces, and any later change or deletion is in a
delta written after that freeze; an entity created later is in such a delta. Nothing the restore
needs is ever tombstoned: deltas are dropped only once a *newer* generation is complete.

Forgetting is physical: when an entity is forgotten (event-time TTL), a generation starts at the
next commit; once it is complete, every older record that held the entity's values is tombstoned
and the broker's compaction deletes them (``pace`` commits plus the cleaner's lag). Otherwise a
new generation starts when the deltas written since the current one started hold as many
entries as the state (so a restore reads at most ~3x the state), and its pieces are written at
``max(state / pace, entities changed this commit)`` entities per commit: a generation finishes
within ``pace`` commits, and snapshot bytes per commit stay at most the larger of the delta
bytes and state/pace. An idle partition writes nothing.

Entry format inside a piece or delta (after a ``<4sQ`` header: magic, sequence/generation):
``<BBH`` (flags: 1 = tombstone, key length, value length), key (the table prefix ``n``/``d`` +
16 pseudonym bytes), value.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from services.scorer.layout import LINK_TAIL
from services.scorer.state.tables import CHANGELOG_PREFIX, StateStore

MAGIC = b"FRS1"
_HEAD = struct.Struct("<4sQ")
_ENTRY = struct.Struct("<BBH")
_MANIFEST = struct.Struct("<4sQQQ")      # magic, generation, first delta seq, pieces
_SEQ = struct.Struct(">Q")               # big-endian: keys sort like their numbers
_GEN_PIECE = struct.Struct(">QI")
DELTA_PREFIX = b"\x00D"
SNAPSHOT_PREFIX = b"\x00S"
MANIFEST_KEY = b"\x00M"
TOMBSTONE = 1

Entry = tuple[bytes, bytes | None]       # (table prefix + entity key, packed record | None)


def pack_pieces(header: int, entries: Iterable[Entry], piece_bytes: int) -> Iterator[bytes]:
    """Pack entries into values of at most ~``piece_bytes`` (each starts with the header)."""
    head = _HEAD.pack(MAGIC, header)
    parts: list[bytes] = [head]
    size = len(head)
    pack = _ENTRY.pack
    for key, value in entries:
        if value is None:
            parts.append(pack(TOMBSTONE, len(key), 0))
            parts.append(key)
            size += 4 + len(key)
        else:
            parts.append(pack(0, len(key), len(value)))
            parts.append(key)
            parts.append(value)
            size += 4 + len(key) + len(value)
        if size >= piece_bytes:
            yield b"".join(parts)
            parts, size = [head], len(head)
    if len(parts) > 1:
        yield b"".join(parts)


def unpack_entries(value: bytes) -> Iterator[Entry]:
    """The entries of one piece or delta."""
    magic, _ = _HEAD.unpack_from(value)
    if magic != MAGIC:
        return
    view = memoryview(value)
    pos, end = _HEAD.size, len(value)
    unpack = _ENTRY.unpack_from
    while pos < end:
        flags, key_len, value_len = unpack(value, pos)
        pos += 4
        key = bytes(view[pos:pos + key_len])
        pos += key_len
        if flags & TOMBSTONE:
            yield key, None
        else:
            yield key, bytes(view[pos:pos + value_len])
            pos += value_len


def _apply_entries(value: bytes, store: StateStore) -> int:
    """``unpack_entries`` + ``store.apply_changelog`` inlined: restore speed is this loop."""
    magic, _ = _HEAD.unpack_from(value)
    if magic != MAGIC:
        return 0
    tables = {ord(prefix): store.table(kind) for kind, prefix in CHANGELOG_PREFIX.items()}
    sizes = {code: table.layout.size for code, table in tables.items()}
    legacy = {code: table.layout.legacy_size for code, table in tables.items()}
    pad = bytes(LINK_TAIL.size)
    unpack = _ENTRY.unpack_from
    pos, end, applied = _HEAD.size, len(value), 0
    while pos < end:
        flags, key_len, value_len = unpack(value, pos)
        pos += 4
        table = tables.get(value[pos])
        key = value[pos + 1:pos + key_len]
        pos += key_len
        applied += 1
        if table is None:
            pos += 0 if flags & TOMBSTONE else value_len
            continue
        if flags & TOMBSTONE:
            table.records.pop(key, None)
        else:
            code = value[pos - key_len]
            if value_len == sizes[code]:
                table.records[key] = value[pos:pos + value_len]
            elif value_len == legacy[code]:          # written before the link tail: pad it
                table.records[key] = value[pos:pos + value_len] + pad
                if len(table.records[key]) != sizes[code]:   # ... and before the change tail
                    table.records[key] += bytes(sizes[code] - len(table.records[key]))
            elif value_len < sizes[code]:            # an earlier layout: let it migrate (zeros)
                record = table.layout.migrate(value[pos:pos + value_len])
                if record is not None:
                    table.records[key] = record
            pos += value_len
    return applied


@dataclass
class ChangelogWriter:
    """Per-partition writer: what to send to ``scorer-state[p]`` at each commit."""

    pace: int = 16                      # a generation is written within this many commits
    piece_bytes: int = 256 * 1024       # below the broker's 1 MiB message limit
    next_seq: int = 0                   # next delta sequence number
    next_gen: int = 0                   # next generation number
    complete_gen: int = -1              # generation named by the manifest (-1: none yet)
    complete_start_seq: int = 0         # its first delta sequence
    # the generation being written
    frozen: list[bytes] | None = None
    cursor: int = 0
    writing_gen: int = -1
    writing_start_seq: int = 0
    writing_pieces: int = 0
    deltas_since_start: int = 0         # entries in deltas since the complete generation started
    # keys present in the topic that a complete generation will make obsolete
    live_deltas: list[int] = field(default_factory=list)
    live_pieces: list[tuple[int, int]] = field(default_factory=list)
    stale_keys: list[bytes] = field(default_factory=list)   # found on restore, tombstone at next commit
    # an entity was forgotten (TTL): its old values sit in older deltas and pieces until a
    # generation started after the deletion completes, so one is started right away
    purge_pending: bool = False

    def records(self, store: StateStore) -> list[tuple[bytes, bytes | None]]:
        """The topic records for this commit: deltas, snapshot progress, manifest, tombstones."""
        out: list[tuple[bytes, bytes | None]] = [(key, None) for key in self.stale_keys]
        self.stale_keys = []
        dirty = store.drain_changelog()
        first_seq = self.next_seq
        for piece in pack_pieces(first_seq, dirty, self.piece_bytes):
            out.append((DELTA_PREFIX + _SEQ.pack(self.next_seq), piece))
            self.live_deltas.append(self.next_seq)
            self.next_seq += 1
        self.deltas_since_start += len(dirty)
        if any(value is None for _, value in dirty):
            self.purge_pending = True
        size = len(store)
        if self.frozen is None and ((dirty and self.deltas_since_start >= max(size, 1)) or self.purge_pending):
            self.purge_pending = False
            # start a generation; its values are "as of" this commit or later, so the deltas
            # of this commit on are the ones a restore must apply after it
            self.frozen = store.changelog_keys()
            self.cursor = 0
            self.writing_gen = self.next_gen
            self.next_gen += 1
            self.writing_start_seq = first_seq
            self.writing_pieces = 0
        if self.frozen is not None:
            total = len(self.frozen)
            take = max(math.ceil(total / self.pace), len(dirty), 1)
            chunk = self.frozen[self.cursor:self.cursor + take]
            self.cursor += len(chunk)
            entries = [(key, value) for key in chunk if (value := store.changelog_value(key)) is not None]
            for piece in pack_pieces(self.writing_gen, entries, self.piece_bytes):
                out.append((SNAPSHOT_PREFIX + _GEN_PIECE.pack(self.writing_gen, self.writing_pieces), piece))
                self.live_pieces.append((self.writing_gen, self.writing_pieces))
                self.writing_pieces += 1
            if self.cursor >= total:
                out += self._complete()
        return out

    def _complete(self) -> list[tuple[bytes, bytes | None]]:
        gen, start = self.writing_gen, self.writing_start_seq
        out: list[tuple[bytes, bytes | None]] = [
            (MANIFEST_KEY, _MANIFEST.pack(MAGIC, gen, start, self.writing_pieces))]
        out += [(SNAPSHOT_PREFIX + _GEN_PIECE.pack(g, p), None) for g, p in self.live_pieces if g != gen]
        out += [(DELTA_PREFIX + _SEQ.pack(s), None) for s in self.live_deltas if s < start]
        self.live_pieces = [(g, p) for g, p in self.live_pieces if g == gen]
        self.live_deltas = [s for s in self.live_deltas if s >= start]
        self.complete_gen, self.complete_start_seq = gen, start
        self.deltas_since_start = 0
        self.frozen = None
        return out


class ChangelogReader:
    """Collects ``scorer-state[p]`` in offset order; ``apply`` rebuilds the store and the writer."""

    def __init__(self) -> None:
        self._records: dict[bytes, tuple[int, bytes]] = {}   # key -> (arrival order, value)
        self._order = 0
        self._manifest: tuple[int, int] | None = None
        self._manifest_raw: bytes | None = None
        # sequence / generation numbers an unfinished commit used: never handed out again
        self._reserved_seq = -1
        self._reserved_gen = -1

    @staticmethod
    def owns(key: bytes) -> bool:
        """A key of this changelog (delta, snapshot piece or manifest)."""
        return key == MANIFEST_KEY or key.startswith(DELTA_PREFIX) or key.startswith(SNAPSHOT_PREFIX)

    def committed(self, key: bytes) -> bytes | None:
        """The value ``key`` holds in what was collected (None: absent)."""
        if key == MANIFEST_KEY:
            return self._manifest_raw
        record = self._records.get(key)
        return record[1] if record is not None else None

    def reserve(self, keys: Iterable[bytes]) -> None:
        """Keys an unfinished commit wrote (the restore undoes them): ``apply`` continues the
        delta sequence and the generations after theirs, so no later record reuses one."""
        for key in keys:
            if key.startswith(DELTA_PREFIX) and len(key) == len(DELTA_PREFIX) + _SEQ.size:
                self._reserved_seq = max(self._reserved_seq, _SEQ.unpack_from(key, 2)[0])
            elif key.startswith(SNAPSHOT_PREFIX) and len(key) == len(SNAPSHOT_PREFIX) + _GEN_PIECE.size:
                self._reserved_gen = max(self._reserved_gen, _GEN_PIECE.unpack_from(key, 2)[0])

    def add(self, key: bytes, value: bytes | None) -> bool:
        """Take one record; False when the key is not a changelog key of this format."""
        if key == MANIFEST_KEY:
            if value is not None and len(value) == _MANIFEST.size:
                magic, gen, start, _ = _MANIFEST.unpack(value)
                if magic == MAGIC:
                    self._manifest = (gen, start)
                    self._manifest_raw = value
            return True
        if not self.owns(key):
            return False
        if value is None:
            self._records.pop(key, None)      # what compaction would do
        else:
            self._records[key] = (self._order, value)
            self._order += 1
        return True

    def apply(self, store: StateStore, writer: ChangelogWriter) -> int:
        """Rebuild ``store``; set ``writer`` to continue the sequence. Returns entries applied."""
        gen, start = self._manifest if self._manifest is not None else (-1, 0)
        chosen: list[tuple[int, bytes]] = []
        max_seq, max_gen = -1, gen
        for key, (order, value) in self._records.items():
            if key.startswith(DELTA_PREFIX):
                seq = _SEQ.unpack_from(key, 2)[0]
                max_seq = max(max_seq, seq)
                if seq >= start:
                    chosen.append((order, value))
                    writer.live_deltas.append(seq)
                else:
                    writer.stale_keys.append(key)
            else:
                piece_gen, piece = _GEN_PIECE.unpack_from(key, 2)
                max_gen = max(max_gen, piece_gen)
                if piece_gen == gen:
                    chosen.append((order, value))
                    writer.live_pieces.append((piece_gen, piece))
                else:
                    writer.stale_keys.append(key)     # older, or a generation a crash cut short
        chosen.sort()
        applied = 0
        for _, value in chosen:
            applied += _apply_entries(value, store)
        delta_entries = applied - len(store)
        writer.next_seq = max(max_seq, self._reserved_seq) + 1
        writer.next_gen = max(max_gen, self._reserved_gen) + 1
        writer.complete_gen, writer.complete_start_seq = gen, start
        # entries in the live deltas (what a restore replays beyond one copy of the state)
        writer.deltas_since_start = max(0, delta_entries)
        # a purge the previous owner had not finished (or a generation a crash cut short): write
        # a fresh generation, after which everything older is tombstoned
        writer.purge_pending = True
        return applied


__all__ = ["CHANGELOG_PREFIX", "ChangelogReader", "ChangelogWriter", "pack_pieces", "unpack_entries"]
