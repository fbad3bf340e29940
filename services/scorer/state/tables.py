"""Per-entity state of one partition: packed records in dicts, a dirty set for the changelog.

Keys are the 16 raw bytes of the 32-hex pseudonym (half the memory of the text). Values are the
packed records of ``layout``. The store never decides anything: the engine, links and sweep
read, update and write records (the sweep finds idle entities with ``features.scan_records``);
the store remembers which keys changed since the last changelog drain.
"""

from __future__ import annotations

import struct
import sys
from typing import Literal

from services.scorer.layout import DEVICE, FLAGGED, NUMBER, Layout

_LAST_MS = struct.Struct("<q")
# "flagged": devices at or above the link level, as seen by the numbers' partition (broadcast links)
TableKind = Literal["number", "device", "flagged"]
CHANGELOG_PREFIX: dict[TableKind, bytes] = {"number": b"n", "device": b"d", "flagged": b"f"}
MODELS_KEY = b"__models__"
# the last record of every commit on a state partition (before its tombstones): a restore takes
# only what such a marker closes; what follows the last one is a commit a crash cut short
COMMIT_KEY = b"\x00C"
COMMIT_MARKER = b"FRC1"


def entity_key(entity: str) -> bytes:
    if len(entity) == 32:
        try:
            return bytes.fromhex(entity)
        except ValueError:
            pass
    return entity.encode()


def entity_text(key: bytes) -> str:
    return key.hex() if len(key) == 16 else key.decode()


class EntityTable:
    """One entity type's records."""

    def __init__(self, entity_type: TableKind, layout: Layout) -> None:
        self.entity_type = entity_type
        self.layout = layout
        self.records: dict[bytes, bytes] = {}
        self.dirty: set[bytes] = set()

    def __len__(self) -> int:
        return len(self.records)

    def latest_ms(self) -> int:
        """The latest event time of any entity (0 when empty)."""
        unpack = _LAST_MS.unpack_from
        return max((unpack(value)[0] for value in self.records.values()), default=0)

    def bytes_used(self) -> int:
        """Bytes held: the dict's table plus every key and value object (all the same size)."""
        n = len(self.records)
        if not n:
            return 0
        key = next(iter(self.records))
        return sys.getsizeof(self.records) + n * (sys.getsizeof(key) + sys.getsizeof(self.records[key]))


class StateStore:
    """Numbers and devices of one partition, plus changelog bookkeeping."""

    def __init__(self) -> None:
        self.numbers = EntityTable("number", NUMBER)
        self.devices = EntityTable("device", DEVICE)
        self.flagged = EntityTable("flagged", FLAGGED)
        self._by_kind = {table.entity_type: table for table in self.tables()}
        self._by_prefix = {CHANGELOG_PREFIX[kind]: table for kind, table in self._by_kind.items()}

    def table(self, entity_type: TableKind) -> EntityTable:
        return self._by_kind[entity_type]

    def tables(self) -> tuple[EntityTable, EntityTable, EntityTable]:
        return self.numbers, self.devices, self.flagged

    def __len__(self) -> int:
        return len(self.numbers) + len(self.devices) + len(self.flagged)

    def drain_changelog(self) -> list[tuple[bytes, bytes | None]]:
        """(changelog key, packed record or None for a tombstone) of every key changed since last time."""
        out: list[tuple[bytes, bytes | None]] = []
        for table in self.tables():
            prefix = CHANGELOG_PREFIX[table.entity_type]
            records = table.records
            for key in table.dirty:
                out.append((prefix + key, records.get(key)))
            table.dirty.clear()
        return out

    def changelog_keys(self) -> list[bytes]:
        """Every live entity's changelog key (a frozen list for a snapshot generation)."""
        keys: list[bytes] = []
        for table in self.tables():
            prefix = CHANGELOG_PREFIX[table.entity_type]
            keys += [prefix + key for key in table.records]
        return keys

    def changelog_value(self, key: bytes) -> bytes | None:
        """The current record of a changelog key (None when the entity was forgotten)."""
        table = self._by_prefix.get(key[:1], self.devices)
        return table.records.get(key[1:])

    def apply_changelog(self, key: bytes, value: bytes | None) -> None:
        """Restore one changelog record (later records of a key win, as in compaction)."""
        table = self._by_prefix.get(key[:1], self.devices)
        entity = key[1:]
        if value is None:
            table.records.pop(entity, None)
        else:
            record = table.layout.migrate(value)
            if record is not None:
                table.records[entity] = record
