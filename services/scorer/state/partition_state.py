"""``PartitionState``: everything one input partition's scorer keeps, and its one way in and out.

It owns the packed entity tables (``tables``), the entity changelog (``changelog``), the
models with their journal (``modellog``) and checkpoint (``checkpoint``), and the progress
that travels with them (event-time watermark, sweep schedule, feedback offset). The service
and the backtest both hold one per partition; only the service writes it out
(``commit_records``) and reads it back (``apply_changelog`` → ``finish_restore`` →
``restore_models``), like quix-streams' store partition with its recovery beside it.
"""

from __future__ import annotations

import struct
from typing import Any

from services.common.records import EntityType
from services.scorer import catalogue
from services.scorer import layout as L
from services.scorer.detectors import EntityModels
from services.scorer.exceptions import CheckpointError
from services.scorer.state import checkpoint
from services.scorer.state.changelog import ChangelogWriter
from services.scorer.state.modellog import ModelJournal, decode_batches, entries
from services.scorer.state.recovery import ModelRestore, Records, Recovery
from services.scorer.state.tables import COMMIT_KEY, COMMIT_MARKER, MODELS_KEY, StateStore

_U64 = struct.Struct("<Q")


class PartitionState:
    """One partition's entity state, models and progress, with its changelog and restore."""

    def __init__(self, models: dict[EntityType, EntityModels], *, model_version: str, signing_key: bytes,
                 sweep_every_ms: int, partition: int = 0, journal: bool = False) -> None:
        self.store = StateStore()
        self.models = models
        self.model_version = model_version
        self.partition = partition
        self.watermark_ms = 0             # latest event time applied
        self.next_sweep_ms = 0
        self.feedback_offset = 0          # next feedback-topic offset not applied
        self.flagged_index: dict[int, bytes] = {}   # device fingerprint -> key in store.flagged
        self.changelog_writer = ChangelogWriter()
        # what the models learned since the last changelog write: kept only when someone writes
        # it (the service); a backtest or an analysis engine would only accumulate it
        self.journal = ModelJournal(enabled=journal)
        self.recovery = Recovery()
        self._signing_key = signing_key
        self._sweep_every_ms = sweep_every_ms

    # -- out: what a commit writes -----------------------------------------------------------------
    def changelog(self) -> Records:
        """``scorer-state`` records for a commit: deltas of changed entities, snapshot progress,
        manifest and tombstones (``state.changelog``); a few large records per commit."""
        return self.changelog_writer.records(self.store)

    def commit_records(self, checkpoint: bool = False) -> Records:
        """Everything one commit writes to ``scorer-state[p]``, in the order that lets a restore
        tell a commit a crash cut short: first the corrections a restore owes (the recovery's
        undo), then the entity and model records, then the commit marker, then the tombstones.

        The producer is idempotent (kafka-python's default with ``acks=all``), so a partition
        receives a *prefix* of what was sent: a commit whose marker landed landed whole, and
        what follows the last marker is an unfinished commit, which ``finish_restore`` drops
        and undoes. Tombstones go after the marker because they only remove what the commit
        made obsolete: losing some of them loses nothing (a restore tombstones leftovers again).
        Empty when there is nothing to write (an idle partition writes nothing).
        """
        records = [*self.changelog(), *self.model_records(checkpoint=checkpoint)]
        undo = self.recovery.take_undo()
        if not records and not undo:
            return []
        return [*undo, *(r for r in records if r[1] is not None), (COMMIT_KEY, COMMIT_MARKER),
                *(r for r in records if r[1] is None)]

    def model_records(self, checkpoint: bool = False) -> Records:
        """The models' ``scorer-state`` records for a commit, sent after ``changelog()``'s
        (``state.modellog``): a checkpoint and tombstones for the journal it replaces when asked
        (or when a restore could not continue one), else the journal batch of what the models
        learned since the last call (none when nothing changed)."""
        journal = self.journal
        # idle models are those of their last checkpoint: no point in another copy
        if (checkpoint and (journal.since_checkpoint or journal.live or journal.stale)) or journal.needs_checkpoint:
            blob = self.checkpoint()
            return [(MODELS_KEY, blob), *journal.checkpointed(self.feedback_offset, self.next_sweep_ms)]
        return list(journal.batches(self._signing_key, self.model_version, self.feedback_offset,
                                    self.next_sweep_ms))

    def checkpoint(self) -> bytes:
        """Signed, compressed snapshot of the models (not the entity state, which is changelogged)."""
        return checkpoint.dump(self._signing_key, model_version=self.model_version, partition=self.partition,
                               models=self.models, feedback_offset=self.feedback_offset,
                               next_sweep_ms=self.next_sweep_ms, journal_seq=self.journal.next_seq)

    # -- in: a restore -------------------------------------------------------------------------------
    def apply_changelog(self, key: bytes, value: bytes | None) -> None:
        """Collect one ``scorer-state`` record during a restore, in log order (``finish_restore``
        applies the state, ``restore_models`` the checkpoint and journal)."""
        self.recovery.add(key, value)

    @property
    def discarded_records(self) -> int:
        """Records of an unfinished commit the last restore dropped (and the next commit undoes)."""
        return self.recovery.discarded_records

    def finish_restore(self) -> int:
        """Rebuild the entity state from the collected records; returns the entity entries applied."""
        reader = self.recovery.close()
        if reader is None:
            return 0
        applied = reader.apply(self.store, self.changelog_writer)
        unpack = _U64.unpack_from
        self.flagged_index = {unpack(rec, L.DEVICE_FP_OFFSET)[0]: key
                              for key, rec in self.store.flagged.records.items()}
        last = max((table.latest_ms() for table in (self.store.numbers, self.store.devices)), default=0)
        if last > self.watermark_ms:
            self.watermark_ms = last
            self.next_sweep_ms = last + self._sweep_every_ms
        return applied

    def restore_checkpoint(self, blob: bytes) -> bool:
        """Load models from ``checkpoint()`` output; False (and keep fresh models) on a version change."""
        return self._load_checkpoint(blob) is not None

    def _load_checkpoint(self, blob: bytes) -> int | None:
        """The journal sequence the checkpoint continues at; None on a version change."""
        data = checkpoint.load(self._signing_key, blob, self.model_version)
        if data is None:
            return None
        self.models = data["models"]
        self.feedback_offset = int(data["feedback_offset"])
        self.next_sweep_ms = max(self.next_sweep_ms, int(data["next_sweep_ms"]))
        return int(data.get("journal_seq", 0))

    def restore_models(self) -> ModelRestore:
        """After ``finish_restore``: the collected checkpoint, then the journal batches after it,
        so the models (and feedback offset, sweep schedule) are those of the last commit. Never
        raises: what could not be used is reported, and fresh or older models go on."""
        blob, journal = self.recovery.take_models()
        report = ModelRestore()
        start: int | None = 0                         # journal sequence to continue at (None: none)
        if blob is not None:
            try:
                start = self._load_checkpoint(blob)
                report.checkpoint = "restored" if start is not None else "other_version"
            except (CheckpointError, *checkpoint.UNUSABLE) as exc:
                report.checkpoint, report.error, start = "rejected", str(exc), None
        seqs = {key: int.from_bytes(key[-8:], "big") for key in journal}
        self.journal.next_seq = max([start or 0, self.recovery.tail_journal_next,
                                     *(seq + 1 for seq in seqs.values())])
        # the consecutive batches from the checkpoint's sequence on (log order is sequence order):
        # after a missing one (removed from the topic by something else: a commit cut short is
        # dropped whole before this, see ``Recovery``) the rest would teach the models out of order
        usable: list[tuple[bytes, bytes]] = []
        for key, value in journal.items():
            if start is None or seqs[key] < start:
                continue
            if seqs[key] != start + len(usable):
                report.error = report.error or f"model journal: batch {start + len(usable)} missing before {seqs[key]}"
                break
            usable.append((key, value))
        batches, error = decode_batches(self._signing_key, usable)
        report.error = report.error or error
        foreign = self._replay(batches, seqs, report)
        live = set(self.journal.live)
        self.journal.stale = [key for key in journal if seqs[key] not in live]
        self.journal.since_checkpoint = report.entries
        # anything unusable: a fresh checkpoint at the next commit makes the log consistent again
        self.journal.needs_checkpoint = (foreign or report.error is not None or bool(self.recovery.undo)
                                         or report.checkpoint in ("other_version", "rejected"))
        self.recovery.tail_journal_next = 0
        return report

    def _replay(self, batches: list[tuple[bytes, dict[str, Any]]], seqs: dict[bytes, int],
                report: ModelRestore) -> bool:
        """Teach the models the journal batches of this model version; True when some were of another."""
        foreign = False
        for key, batch in batches:
            if batch["model_version"] != self.model_version:
                foreign = True
                continue
            for is_feedback, entity_type, features, extra in entries(batch):
                models = self.models["number" if entity_type == "number" else "device"]
                if is_feedback:
                    models.feedback.learn_one(catalogue.for_models(features), bool(extra))
                else:
                    models.learn_one(features, extra)
                report.entries += 1
            self.feedback_offset = int(batch["feedback_offset"])
            self.next_sweep_ms = int(batch["next_sweep_ms"])
            self.journal.live.append(seqs[key])
            report.batches += 1
        return foreign

    # -- sizes for metrics ---------------------------------------------------------------------------
    def entities(self) -> dict[EntityType, int]:
        return {"number": len(self.store.numbers), "device": len(self.store.devices)}

    def state_bytes(self) -> int:
        return self.store.numbers.bytes_used() + self.store.devices.bytes_used()
