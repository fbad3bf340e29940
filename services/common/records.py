"""Wire records between services: views, risk, alerts, feedback, audit.

These are the contracts of docs/contracts.md and docs/architecture.md in code. Every record
is a ``msgspec.Struct`` encoded as JSON (``encode``/``decode_*`` below). Identifiers are
pseudonyms (32 hex chars, 128 bits of HMAC-SHA256); no plaintext number, IMEI or IMSI appears
in any of them. Where a partner may see the number, ``number_enc`` carries it AEAD-encrypted under the disclosure key.

Times: ``*_ms`` fields are event-time epoch milliseconds (UTC); ``*_at`` fields of records
partners see are RFC 3339 strings in UTC.
"""

from __future__ import annotations

from typing import Literal

import msgspec

VIEW_VERSION = 1

EntityType = Literal["number", "device"]
Level = Literal["none", "low", "medium", "high", "critical"]
LEVELS: tuple[Level, ...] = ("none", "low", "medium", "high", "critical")
NumberKind = Literal["e164", "short_code", "alphanumeric"]
# The side a view describes: the number/device originated the traffic, received it, or is
# the subject of a SIM/device change.
Role = Literal["out", "in", "change"]
EventType = Literal["sms", "call", "sim", "forwarding", "subscription"]
ForwardingKind = Literal["unconditional", "busy", "no_answer", "not_reachable"]
SubscriptionChange = Literal["new", "ported_in", "ported_out", "ceased"]
Contract = Literal["PAYG", "PAYM", "business"]


# Views and their parts are flat (strings, numbers, each other: no container, so no reference
# cycle) and decoded by the hundred thousand per second: gc=False keeps them out of the cyclic
# garbage collector, whose passes would otherwise be a large share of the scorer's loop
# (docs/scorer.md, "Measured").
class SmsMeta(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    segments: int = 1
    has_url: bool = False
    chars: int = 0


class CallMeta(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    duration_s: float = 0.0
    answered: bool = False


class SimMeta(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    change: Literal["swap", "activation", "port_in", "port_out", "device_change"]
    # pseudonyms of the new IMSI / device when the event names them
    imsi: str | None = None
    device: str | None = None


class ForwardingMeta(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    action: Literal["set", "cleared"]
    kind: ForwardingKind


class SubscriptionMeta(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    change: SubscriptionChange
    contract: Contract | None = None


class View(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One side of one raw event, keyed by ``entity`` (the pseudonym of that side).

    Number views go to ``fraudradar.numbers``: an SMS or call yields an ``out`` view for the
    originator and an ``in`` view for the recipient; a SIM change yields a ``change`` view for
    the number, and so does a call-forwarding or subscription lifecycle change. Device views go
    to ``fraudradar.devices``: the subscriber's device (IMEI) as
    seen on an SMS, call or change, with the IMSI and number it was used with.
    """

    view_id: str                 # deterministic: digest(operator, event_id) + side code (no, ni, nc, do, di, dc)
    entity_type: EntityType
    entity: str                  # pseudonym of this side (number or device)
    role: Role
    type: EventType
    operator: str
    occurred_ms: int             # event time
    ingested_ms: int             # wall time at ingest (for event-to-alert latency)
    key_id: str                  # pseudonym key id
    number_kind: NumberKind | None = None   # of the number (number views) or the subscriber number (device)
    peer: str | None = None      # pseudonym of the other number (sms/call)
    peer_kind: NumberKind | None = None
    number: str | None = None    # device views: the subscriber number's pseudonym
    device: str | None = None    # number views: subscriber's device pseudonym, when known
    tac: str | None = None       # 8-digit Type Allocation Code (device model, not personal)
    imsi: str | None = None      # pseudonym
    mccmnc: str | None = None    # home network of the IMSI (e.g. "20404")
    cell: str | None = None      # pseudonym
    subscriber: bool = True      # is this side the reporting operator's subscriber
    late: bool = False           # arrived later than the configured lateness bound
    sms: SmsMeta | None = None
    call: CallMeta | None = None
    sim: SimMeta | None = None
    forwarding: ForwardingMeta | None = None
    subscription: SubscriptionMeta | None = None
    number_enc: str | None = None   # AEAD(E.164) of the number (number views) or of the subscriber
    #                                  number (device views), for E.164 numbers only
    v: int = VIEW_VERSION


class Reason(msgspec.Struct, frozen=True, omit_defaults=True):
    """A stable code plus the numbers behind it, e.g. HIGH_RECIPIENT_DIVERSITY 412 in 1h, p99.9."""

    code: str
    feature: str
    value: float
    window: str                  # "5m", "1h", "24h", "lifetime", "event", "change" (since the SIM/device change)
    rarity: str                  # "p99.9", "rule", "model p99", ...
    text: str


class Risk(msgspec.Struct, frozen=True, omit_defaults=True):
    """Latest risk of one entity, on the compacted ``fraudradar.risk`` (key ``type:pseudonym``)."""

    entity_type: EntityType
    entity: str
    score: int                   # 0..100
    level: Level
    reasons: list[Reason]
    updated_at: str
    expires_at: str
    model_version: str
    first_flagged_at: str | None = None
    sim_changed_at: str | None = None
    device_changed_at: str | None = None
    campaign_id: str | None = None
    number_enc: str | None = None
    key_id: str | None = None
    # numbers, from forwarding and subscription events (CAMARA Call Forwarding Signal, KYC
    # Tenure, Number Recycling): the call forwardings set now, the line's lifecycle, the latest
    # activation (new subscription or port-in) and the first event time the scorer holds
    forwarding: list[ForwardingKind] | None = None
    line: Literal["active", "ceased", "recycled"] | None = None
    activated_at: str | None = None
    first_seen_at: str | None = None


class Window(msgspec.Struct, frozen=True):
    start: str
    end: str


class Alert(msgspec.Struct, frozen=True, omit_defaults=True):
    """A red flag on ``fraudradar.alerts`` (key ``alert_id``)."""

    alert_id: str                # deterministic: hash(entity_type, entity, level, episode start, model_version)
    entity_type: EntityType
    entity: str
    level: Level
    score: int
    reasons: list[Reason]
    evidence: dict[str, float]   # counts and ratios, never events
    window: Window
    model_version: str
    raised_at: str               # event time of the view that raised it
    campaign_id: str | None = None
    number_enc: str | None = None
    key_id: str | None = None
    ingested_ms: int | None = None   # wall time the triggering view entered ingest


class Link(msgspec.Struct, frozen=True, omit_defaults=True):
    """A number seen acting on a flagged device, on ``fraudradar.links`` (key: the number's pseudonym).

    Written by the scorer that owns the device's partition, read by the one that owns the
    number's: numbers and devices live on different partitions, and a farm's SIMs show their
    device's verdict long before their own traffic does. Deterministic content (from the
    device's state), so the number's link alert has the same ``alert_id`` on every run.
    """

    number: str                  # pseudonym of the number (key; partitioned like its views); "" in a broadcast
    device: str                  # pseudonym of the flagged device
    device_score: int            # the device's risk score when the number acted on it
    device_episode_s: int        # start of the device's alert episode (event seconds)
    reason: str                  # the device's strongest reason code, e.g. SIM_HOPPING
    occurred_ms: int             # event time of the number's act on the device
    key_id: str
    ingested_ms: int = 0         # wall time that act entered ingest (event-to-alert latency)
    number_enc: str | None = None
    # broadcast: the device just started an alert episode; sent to every partition (``number``
    # empty) so each links the numbers it knows on that device, and remembers the device
    broadcast: bool = False
    # the device's campaign when it sent the link: the linked number joins it (absent in links
    # of older scorers: then the device's own campaign, ``device:<fp>``)
    campaign_id: str | None = None


FeedbackLabel = Literal["confirmed_fraud", "false_positive"]


class Feedback(msgspec.Struct, frozen=True, omit_defaults=True):
    """A partner's report on ``fraudradar.feedback`` (key ``type:pseudonym``)."""

    report_id: str
    partner: str
    entity_type: EntityType
    entity: str
    label: FeedbackLabel
    reported_at: str
    alert_id: str | None = None
    note: str | None = None


class AuditRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """One lookup or operator action on ``fraudradar.audit``."""

    audit_id: str
    at: str
    partner: str
    purpose: str
    action: str                  # "numbers:lookup", "sim-swap:check", "override", ...
    entity_type: EntityType
    entity: str
    answer_level: str
    correlator: str | None = None


_encoder = msgspec.json.Encoder()
_view_decoder = msgspec.json.Decoder(View)
_views_decoder = msgspec.json.Decoder(list[View])
_risk_decoder = msgspec.json.Decoder(Risk)
_alert_decoder = msgspec.json.Decoder(Alert)
_feedback_decoder = msgspec.json.Decoder(Feedback)
_audit_decoder = msgspec.json.Decoder(AuditRecord)
_link_decoder = msgspec.json.Decoder(Link)


def encode(record: msgspec.Struct) -> bytes:
    return _encoder.encode(record)


def encode_view_bundle(views: list[View]) -> bytes:
    """Several views of one partition in one Kafka record (a JSON array).

    kafka-python spends tens of µs per produced record in pure Python and an event yields 2-3
    views, so one record per view would cap ingest well below a plain pass-through (docs/contracts.md,
    "Bundles"). Ingest therefore
    writes, per poll batch, one bundle per (topic, partition), placed on the partition Kafka's
    default partitioner gives each view's pseudonym, so co-partitioning with keyed topics
    (the scorer's state changelog) holds exactly as if every view were its own keyed record.
    """
    return _encoder.encode(views)


def decode_views(data: bytes) -> list[View]:
    """The views of one record on the views topics: a bundle (array) or a single view (object)."""
    if data[:1] == b"[":
        return _views_decoder.decode(data)
    return [_view_decoder.decode(data)]


def decode_risk(data: bytes) -> Risk:
    return _risk_decoder.decode(data)


def decode_alert(data: bytes) -> Alert:
    return _alert_decoder.decode(data)


def decode_feedback(data: bytes) -> Feedback:
    return _feedback_decoder.decode(data)


def decode_link(data: bytes) -> Link:
    return _link_decoder.decode(data)


def decode_audit(data: bytes) -> AuditRecord:
    return _audit_decoder.decode(data)


def risk_key(entity_type: EntityType, entity: str) -> bytes:
    return f"{entity_type}:{entity}".encode()
