"""Records of the compacted ``fraudradar.partner-state`` topic: the API's own durable state.

Watch-lists, webhook registrations, operator overrides, contests and webhook delivery cursors
live here so they survive restarts and every replica sees the same. Keys name the object
(``watch:<partner>:<entry>``, ``webhook:<partner>:<id>``, ``override:<id>``, ``contest:<id>``,
``cursor:<webhook>``, ``usage:<partner>:<kind>:<window>:<replica>``, ``jti:<partner>:<jti>``,
``simswapsub:<partner>:<id>``); a tombstone deletes it. Usage counts and used client assertions are
what limits and replay protection share across replicas. Entities are pseudonyms, never numbers;
webhook signing secrets are sealed with the disclosure key (AEAD bound to the webhook id).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from services.common.records import EntityType


class WatchEntry(msgspec.Struct, frozen=True, tag="watch", omit_defaults=True):
    partner: str
    entry_id: str
    entity_type: EntityType
    entity: str
    created_at: str
    reference: str | None = None


class Webhook(msgspec.Struct, frozen=True, tag="webhook", omit_defaults=True):
    partner: str
    webhook_id: str
    url: str
    events: list[str]
    secret_enc: str
    created_at: str
    description: str | None = None


class Override(msgspec.Struct, frozen=True, tag="override", omit_defaults=True):
    override_id: str
    entity_type: EntityType
    entity: str
    action: Literal["clear", "pin"]
    reason: str
    created_by: str
    created_at: str
    expires_at: str
    level: str | None = None


class Contest(msgspec.Struct, frozen=True, tag="contest", omit_defaults=True):
    contest_id: str
    partner: str
    entity_type: EntityType
    entity: str
    reason: str
    created_at: str
    status: Literal["open", "upheld", "rejected"] = "open"
    resolution: str | None = None
    resolved_by: str | None = None
    resolved_at: str | None = None


class DeliveryCursor(msgspec.Struct, frozen=True, tag="cursor"):
    """Next source offset per ``topic:partition`` up to which a webhook's events are settled."""

    webhook_id: str
    positions: dict[str, int]


class Usage(msgspec.Struct, frozen=True, tag="usage"):
    """One replica's count of a partner's use in one window: ``quota`` (requests, window = UTC
    day number) or ``budget`` (distinct numbers, window = hour number). Every replica adds the
    other replicas' counts to its own, so a partner's limits hold across replicas."""

    partner: str
    kind: Literal["quota", "budget"]
    window: int
    replica: str
    count: int


class AssertionUse(msgspec.Struct, frozen=True, tag="jti"):
    """A client assertion (private_key_jwt) that was used: refused again on every replica."""

    partner: str
    jti: str
    expires_at: float


class SimSwapSubscription(msgspec.Struct, frozen=True, tag="simswapsub", omit_defaults=True):
    """A CAMARA SIM Swap subscription (services/api/subscriptions.py). The number is kept as
    its pseudonym and, sealed with the disclosure key (bound to the pseudonym), the text the
    partner subscribed with; the sink's access token is sealed bound to the subscription id.
    ``revision`` grows with every write; ``ended`` is the termination reason once it ended
    (the record is removed when the subscription-ended notification is settled)."""

    partner: str
    subscription_id: str
    purpose: str
    entity: str
    number_enc: str
    sink: str
    created_at: str
    expires_at: str
    last_swap_at: str
    revision: int = 0
    token_enc: str | None = None
    token_expires_at: str | None = None
    requested_expire_time: str | None = None
    max_events: int | None = None
    events: int = 0
    ended: str | None = None


StateRecord = (
    WatchEntry | Webhook | Override | Contest | DeliveryCursor | Usage | AssertionUse | SimSwapSubscription
)

_decoder = msgspec.json.Decoder(StateRecord)
_encoder = msgspec.json.Encoder()


def encode_state(record: StateRecord) -> bytes:
    return _encoder.encode(record)


def decode_state(data: bytes) -> StateRecord:
    record: StateRecord = _decoder.decode(data)
    return record


def state_key(record: StateRecord) -> str:
    if isinstance(record, WatchEntry):
        return f"watch:{record.partner}:{record.entry_id}"
    if isinstance(record, Webhook):
        return f"webhook:{record.partner}:{record.webhook_id}"
    if isinstance(record, Override):
        return f"override:{record.override_id}"
    if isinstance(record, Contest):
        return f"contest:{record.contest_id}"
    if isinstance(record, Usage):
        return f"usage:{record.partner}:{record.kind}:{record.window}:{record.replica}"
    if isinstance(record, AssertionUse):
        return f"jti:{record.partner}:{record.jti}"
    if isinstance(record, SimSwapSubscription):
        return f"simswapsub:{record.partner}:{record.subscription_id}"
    return f"cursor:{record.webhook_id}"
