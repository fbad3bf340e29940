"""Recovery: collecting one ``scorer-state`` partition, in log order, into what a restore applies.

A record counts once a commit marker after it closes its commit (``PartitionState.commit_records``);
what follows the last marker is a commit a crash cut short: dropped, and undone at the next
commit. ``Recovery`` only collects and sorts; ``PartitionState`` applies what it hands over.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.scorer.state.changelog import ChangelogReader
from services.scorer.state.modellog import is_journal_key
from services.scorer.state.tables import COMMIT_KEY, MODELS_KEY

Records = list[tuple[bytes, bytes | None]]


@dataclass
class ModelRestore:
    """What ``PartitionState.restore_models`` found: the checkpoint's fate and the journal replayed after it."""

    checkpoint: str = "none"     # none | restored | other_version | rejected
    batches: int = 0
    entries: int = 0
    error: str | None = None

    @property
    def outcome(self) -> str:
        """One word for metrics: the checkpoint's fate, or ``journal_error`` when the checkpoint
        was fine but a journal batch after it could not be used."""
        if self.error is not None and self.checkpoint in ("restored", "none"):
            return "journal_error"
        return self.checkpoint


class Recovery:
    """The records of one restore, sorted into entity state, model checkpoint and journal."""

    def __init__(self) -> None:
        self.reader: ChangelogReader | None = None
        self.models: bytes | None = None             # the committed model checkpoint
        self.journal: dict[bytes, bytes] = {}        # committed journal batches, in log order
        self._pending: Records = []                  # records since the last commit marker
        self._marked = False                         # whether any marker was read
        self.tail_journal_next = 0                   # journal sequence after a discarded tail's batches
        self.undo: Records = []                      # corrections the next commit writes first
        self.discarded_records = 0                   # records of an unfinished commit the last restore undid

    def add(self, key: bytes, value: bytes | None) -> None:
        """Collect one record, in log order."""
        if key == COMMIT_KEY:
            pending, self._pending = self._pending, []
            for k, v in pending:
                self._collect(k, v)
            self._marked = True
            return
        self._pending.append((key, value))

    def _collect(self, key: bytes, value: bytes | None) -> None:
        if key == MODELS_KEY:
            self.models = value
            return
        if is_journal_key(key):
            self.journal.pop(key, None)      # a rewrite moves it to its new place
            if value is not None:
                self.journal[key] = value
            return
        if self.reader is None:
            self.reader = ChangelogReader()
        self.reader.add(key, value)

    def close(self) -> ChangelogReader | None:
        """End of the log: settle the records after the last marker; the entity records to apply."""
        tail, self._pending = self._pending, []
        self.discarded_records = 0
        if tail and not self._marked:
            for key, value in tail:                # a log written before commit markers: all of it
                self._collect(key, value)
        elif tail:
            self._discard_tail(tail)
        self._marked = False
        reader, self.reader = self.reader, None
        return reader

    def _discard_tail(self, tail: Records) -> None:
        """Records after the last commit marker: a commit a crash cut short (its offsets were
        never committed, its views come again). Dropped, and undone at the next commit: each
        key it wrote gets its committed value back (or a tombstone), so neither a later restore
        nor compaction can pick them up. Sequence numbers it used are not reused, and the models
        take a fresh checkpoint (the journal goes on after a gap)."""
        keys = list(dict.fromkeys(key for key, value in tail if value is not None))
        self.discarded_records = sum(1 for _, value in tail if value is not None)
        if not keys:
            return                                 # only the last commit's tombstones: nothing to undo
        undo: Records = []
        journal_seqs: list[int] = []
        for key in keys:
            if key == MODELS_KEY:
                undo.append((key, self.models))
            elif is_journal_key(key):
                undo.append((key, self.journal.get(key)))
                journal_seqs.append(int.from_bytes(key[-8:], "big"))
            elif ChangelogReader.owns(key):
                if self.reader is None:
                    self.reader = ChangelogReader()
                undo.append((key, self.reader.committed(key)))
            # anything else on the topic is not this partition's to correct
        if self.reader is not None:
            self.reader.reserve(keys)
        self.tail_journal_next = max(journal_seqs, default=-1) + 1
        self.undo = undo

    def take_models(self) -> tuple[bytes | None, dict[bytes, bytes]]:
        """The collected checkpoint and journal (once: a second call finds none)."""
        blob, journal = self.models, self.journal
        self.models, self.journal = None, {}
        return blob, journal

    def take_undo(self) -> Records:
        undo, self.undo = self.undo, []
        return undo
