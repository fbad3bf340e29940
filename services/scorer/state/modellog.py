"""The models' changelog: a signed checkpoint now and then, and a journal of learning at every commit.

Entity state is changelogged at every commit; a full model checkpoint (tens of kB and of ms of
pickling, docs/scorer.md "Measured") only every ``checkpoint_interval_s``. A
restore that paired the latest state with an older checkpoint left the models without
everything they had learned in between: views already applied to their entity are skipped
when redelivered, so they are never learned again, and the restored engine scored later
views differently from one that never stopped (docs/reliability.md lists what that cost).

The journal closes the gap: every commit writes, in learning order, what the models learned
since the last record (the feature vector and the raw scores each detector learned with, and
partner feedback with its label), plus the engine's feedback offset and next sweep time. The
latest checkpoint followed by the journal batches written after it replays the models, and the
sweep schedule, to where they stood at the last commit. Learning is
deterministic given the same inputs in the same order, so the result is the same model.

Records on ``scorer-state[p]`` (compacted, alongside ``services.scorer.state.changelog``):

* ``__models__``: the signed model checkpoint; it names the first journal sequence number it
  does *not* include;
* ``__models__:j`` + sequence (big-endian u64): a signed journal batch ``{seq, entries,
  feedback offset, next sweep}``; a checkpoint tombstones the batches it includes.

Journal batches are msgpack, not pickle (nothing in them is code), compressed and signed
with the checkpoint key so that a forged record cannot teach the models.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from services.scorer.exceptions import CheckpointError
from services.scorer.state.tables import MODELS_KEY

JOURNAL_PREFIX = MODELS_KEY + b":j"
JOURNAL_FORMAT = 1
BATCH_ENTRIES = 2048           # entries per journal record: well under a megabyte (docs/scorer.md "Measured")
_SEQ = struct.Struct(">Q")
_LEARN, _FEEDBACK = 0, 1

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def journal_key(seq: int) -> bytes:
    return JOURNAL_PREFIX + _SEQ.pack(seq)


def is_journal_key(key: bytes | None) -> bool:
    return key is not None and key.startswith(JOURNAL_PREFIX) and len(key) == len(JOURNAL_PREFIX) + _SEQ.size


def sign(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest() + payload


def verified(key: bytes, blob: bytes, what: str) -> bytes:
    """The payload of a signed record; ``CheckpointError`` when the signature does not verify."""
    tag, payload = blob[:32], blob[32:]
    if not hmac.compare_digest(tag, hmac.new(key, payload, hashlib.sha256).digest()):
        raise CheckpointError(f"{what} signature does not verify (wrong key or tampered)")
    return payload


class ModelJournal:
    """What the models of one engine learned since the last journal record, and its bookkeeping.

    Sequence numbers never repeat within a partition's log. A checkpoint records ``next_seq``
    at the moment it was taken: it includes every batch before that and none after.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.next_seq = 0
        self.live: list[int] = []          # batches written since the last checkpoint
        self.stale: list[bytes] = []       # journal keys a restore found obsolete
        self.since_checkpoint = 0          # entries learned since the last checkpoint (restore cost)
        self.needs_checkpoint = False      # a restore could not continue a checkpoint: take one now
        self._entries: list[list[Any]] = []
        self._schemas: dict[tuple[str, ...], int] = {}
        self._written: tuple[int, int] | None = None   # (feedback offset, next sweep) last written

    def __len__(self) -> int:
        return len(self._entries)

    def _schema(self, features: dict[str, float]) -> int:
        names = tuple(features)
        index = self._schemas.get(names)
        if index is None:
            index = self._schemas[names] = len(self._schemas)
        return index

    def learned(self, entity_type: str, features: dict[str, float], raws: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._entries.append([_LEARN, entity_type, self._schema(features), list(features.values()), raws])
        self.since_checkpoint += 1

    def feedback(self, entity_type: str, features: dict[str, float], fraud: bool) -> None:
        if not self.enabled:
            return
        self._entries.append([_FEEDBACK, entity_type, self._schema(features), list(features.values()), fraud])
        self.since_checkpoint += 1

    def batches(self, signing_key: bytes, model_version: str, feedback_offset: int,
                next_sweep_ms: int) -> list[tuple[bytes, bytes]]:
        """The next journal records (``BATCH_ENTRIES`` entries at most each: below the broker's
        1 MB record limit even uncompressed); none when nothing changed since the last."""
        state = (feedback_offset, next_sweep_ms)
        if not self._entries and state == self._written:
            return []
        names = [list(n) for n, _ in sorted(self._schemas.items(), key=lambda item: item[1])]
        records: list[tuple[bytes, bytes]] = []
        for first in range(0, max(len(self._entries), 1), BATCH_ENTRIES):
            payload = zlib.compress(_encoder.encode({
                "format": JOURNAL_FORMAT, "model_version": model_version, "seq": self.next_seq,
                "feedback_offset": feedback_offset, "next_sweep_ms": next_sweep_ms,
                "names": names, "entries": self._entries[first:first + BATCH_ENTRIES]}), 1)
            records.append((journal_key(self.next_seq), sign(signing_key, payload)))
            self.live.append(self.next_seq)
            self.next_seq += 1
        self._entries = []
        self._schemas = {}
        self._written = state
        return records

    def checkpointed(self, feedback_offset: int, next_sweep_ms: int) -> list[tuple[bytes, None]]:
        """A checkpoint including everything learned so far was written: tombstones for the
        journal it replaces (unwritten entries are in it too, so they are dropped)."""
        obsolete = [journal_key(seq) for seq in self.live] + self.stale
        self.live = []
        self.stale = []
        self.since_checkpoint = 0
        self.needs_checkpoint = False
        self._entries = []
        self._schemas = {}
        self._written = (feedback_offset, next_sweep_ms)
        return [(key, None) for key in obsolete]


def decode_batches(signing_key: bytes, records: Iterable[tuple[bytes, bytes]]
                   ) -> tuple[list[tuple[bytes, dict[str, Any]]], str | None]:
    """Verify and decode journal records (in log order) up to the first bad one; its error."""
    out: list[tuple[bytes, dict[str, Any]]] = []
    for key, blob in records:
        try:
            data = _decoder.decode(zlib.decompress(verified(signing_key, blob, "model journal")))
        except CheckpointError as exc:
            return out, f"{key!r}: {exc}"
        except (zlib.error, msgspec.DecodeError) as exc:
            return out, f"{key!r}: model journal record does not decode: {exc}"
        if not isinstance(data, dict) or data.get("format") != JOURNAL_FORMAT:
            return out, f"{key!r}: model journal record of an unknown format"
        out.append((key, data))
    return out, None


def entries(batch: dict[str, Any]) -> Iterable[tuple[bool, str, dict[str, float], Any]]:
    """``(is_feedback, entity_type, features, raws or label)`` in learning order."""
    names: Sequence[Sequence[str]] = batch["names"]
    for kind, entity_type, schema, values, extra in batch["entries"]:
        yield kind == _FEEDBACK, entity_type, dict(zip(names[schema], values, strict=True)), extra


__all__ = ["JOURNAL_PREFIX", "ModelJournal", "decode_batches", "entries", "is_journal_key", "journal_key",
           "sign", "verified"]
