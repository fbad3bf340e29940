"""The live call-state record on ``fraudradar.calls`` (docs/contracts.md, "Call state").

Ingest turns each ``call_state`` raw event into one ``CallState``, keyed by the subscriber's
pseudonym: the reporting operator's own subscriber (a_number for ``mo``, b_number for ``mt``).
Everything about the other side is a pseudonym or a class computed at ingest from the
plaintext (protected bank number, international route presenting a domestic number), so
nothing beyond ingest needs a number in clear to judge the call.
"""

from __future__ import annotations

from typing import Literal

import msgspec

CallStep = Literal["started", "answered", "ended"]
CALL_STEPS: tuple[CallStep, ...] = ("started", "answered", "ended")


class CallState(msgspec.Struct, frozen=True, omit_defaults=True, tag_field="kind", tag="step"):
    call: str                    # digest of (operator, call id): the same on every step of one call
    subscriber: str              # pseudonym of the operator's subscriber (the record's key)
    counterpart: str             # pseudonym of the other party's number (a_number or b_number)
    state: CallStep
    direction: Literal["mo", "mt"]
    operator: str
    occurred_ms: int             # event time of the step
    ingested_ms: int             # wall time at ingest (event-to-check delay)
    key_id: str
    cli: str | None = None       # pseudonym of the presented CLI when it differs from the counterpart's number
    cli_owner: str | None = None      # partner id owning the presented CLI (protected list), "dno" for do-not-originate
    cli_domestic: bool = False        # the presented CLI is a number of the operator's own country
    international: bool = False       # entered from an international route
    forwarded: bool = False           # reached the subscriber through call forwarding
    duration_s: float | None = None   # ended only


class CallAnnouncement(msgspec.Struct, frozen=True, tag_field="kind", tag="announce"):
    """A bank's pre-announced outbound call (CAMARA Verified Caller), written by the API that took
    it, keyed like the called subscriber's steps so every replica applies it in order with them."""

    bank: str                    # partner id of the announcing bank
    subscriber: str              # pseudonym of the called customer (the record's key)
    calling: str                 # pseudonym of the bank's calling number
    announced_ms: int
    expires_ms: int


CallRecord = CallState | CallAnnouncement
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CallState)
_record_decoder = msgspec.json.Decoder(CallRecord)


def encode_call_state(record: CallState | CallAnnouncement) -> bytes:
    return _encoder.encode(record)


def decode_call_state(data: bytes) -> CallState:
    return _decoder.decode(data)


def decode_call_record(data: bytes) -> CallState | CallAnnouncement:
    """Any record of ``fraudradar.calls`` (a step or an announcement, told apart by ``kind``)."""
    return _record_decoder.decode(data)
