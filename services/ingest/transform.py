"""A validated ``RawEvent`` → pseudonymised number and device views.

This is the privacy boundary: the raw event holds plaintext identifiers, the views hold only
pseudonyms (plus the E.164 sealed for disclosure under a separate key). For an SMS or a call
the originator gets an ``out`` view and the recipient an ``in`` view; a SIM or device change,
a call-forwarding change and a subscription lifecycle change get a ``change`` view on the
number. The subscriber's device (IMEI) gets a device view on
every event that names it, carrying the IMSI and number pseudonyms it was used with.

A view id is deterministic (digest of operator and event id plus a side code), so a replayed
event produces the same ids and downstream consumers can deduplicate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from services.common.normalise import (
    IdentifierError,
    NormalisedNumber,
    normalise_imei,
    normalise_imsi,
    normalise_number,
    tac_of,
)
from services.common.pseudonym import Discloser, Pseudonymizer
from services.common.records import (
    CallMeta,
    ForwardingMeta,
    Role,
    SimMeta,
    SmsMeta,
    SubscriptionMeta,
    View,
)
from services.ingest.decode import RawEvent, Rejected

_SIDE_SUFFIX = {("number", "out"): "no", ("number", "in"): "ni", ("number", "change"): "nc",
                ("device", "out"): "do", ("device", "in"): "di", ("device", "change"): "dc"}


def event_digest(operator: str, event_id: str) -> str:
    """120-bit digest of the event's identity (one hash per event, shared by its views)."""
    return hashlib.blake2b(f"{operator}\x1f{event_id}".encode(), digest_size=15).hexdigest()


def view_id(operator: str, event_id: str, entity_type: str, role: str) -> str:
    """32 hex-ish chars: the event digest plus a two-letter side code (deterministic, unique per view)."""
    return event_digest(operator, event_id) + _SIDE_SUFFIX[entity_type, role]


@dataclass(frozen=True, slots=True)
class _Side:
    number: NormalisedNumber
    pseudonym: str


class Transformer:
    """Normalises and pseudonymises; holds no per-event state (safe to share)."""

    def __init__(self, pseudonymizer: Pseudonymizer, discloser: Discloser | None,
                 default_region: str = "NL", operator_regions: dict[str, str] | None = None) -> None:
        self._pseudo = pseudonymizer
        self._discloser = discloser
        self._default_region = default_region
        self._operator_regions = operator_regions or {}

    @property
    def pseudonymizer(self) -> Pseudonymizer:
        return self._pseudo

    @property
    def regions(self) -> tuple[str, dict[str, str]]:
        """The default region and the per-operator regions national numbers are read in."""
        return self._default_region, self._operator_regions

    def transform(self, event: RawEvent, ingested_ms: int, late: bool = False) -> list[View] | Rejected:
        try:
            return self._views(event, ingested_ms, late)
        except IdentifierError as exc:
            return Rejected(exc.reason, str(exc))

    def _number(self, text: str, region: str, alphanumeric: bool) -> _Side:
        number = normalise_number(text, region, allow_alphanumeric=alphanumeric)
        return _Side(number, self._pseudo("msisdn", number.value))

    def _seal(self, side: _Side) -> str | None:
        if self._discloser is None or side.number.kind != "e164":
            return None
        return self._discloser.seal(side.number.value, side.pseudonym)

    def _views(self, ev: RawEvent, ingested_ms: int, late: bool) -> list[View]:
        region = self._operator_regions.get(ev.operator, self._default_region)
        key_id = self._pseudo.key_id
        device = tac = imsi = mccmnc = None
        if ev.imei is not None:
            imei14 = normalise_imei(ev.imei)
            device, tac = self._pseudo("imei", imei14), tac_of(imei14)
        if ev.imsi is not None:
            norm_imsi = normalise_imsi(ev.imsi)
            imsi, mccmnc = self._pseudo("imsi", norm_imsi.value), norm_imsi.mccmnc
        cell = self._pseudo("cell", ev.cell_id) if ev.cell_id is not None else None
        digest = event_digest(ev.operator, ev.event_id)
        common: dict[str, Any] = {"type": ev.type, "operator": ev.operator, "occurred_ms": ev.occurred_ms,
                  "ingested_ms": ingested_ms, "key_id": key_id, "late": late}

        if ev.type == "sim":
            assert ev.sim is not None
            subject = self._number(ev.sim.msisdn, region, alphanumeric=False)
            sim_device = sim_imsi = None
            if ev.sim.imei is not None:
                sim_imei14 = normalise_imei(ev.sim.imei)
                sim_device, tac = self._pseudo("imei", sim_imei14), tac_of(sim_imei14)
            if ev.sim.imsi is not None:
                new_imsi = normalise_imsi(ev.sim.imsi)
                sim_imsi, mccmnc = self._pseudo("imsi", new_imsi.value), new_imsi.mccmnc
            meta = SimMeta(change=ev.sim.change, imsi=sim_imsi, device=sim_device)  # type: ignore[arg-type]
            device = sim_device or device
            imsi = sim_imsi or imsi
            views = [View(
                view_id=digest + "nc", entity_type="number",
                entity=subject.pseudonym, role="change", number_kind=subject.number.kind, device=device,
                tac=tac, imsi=imsi, mccmnc=mccmnc, cell=cell, sim=meta, number_enc=self._seal(subject), **common,
            )]
            if device is not None:
                views.append(View(
                    view_id=digest + "dc", entity_type="device",
                    entity=device, role="change", number=subject.pseudonym, number_kind=subject.number.kind,
                    tac=tac, imsi=imsi, mccmnc=mccmnc, cell=cell, sim=meta, number_enc=self._seal(subject), **common,
                ))
            return views

        if ev.type in ("forwarding", "subscription"):
            return [self._line_view(ev, region, digest, common)]

        assert ev.a_number is not None and ev.b_number is not None
        a = self._number(ev.a_number, region, alphanumeric=ev.type == "sms")
        b = self._number(ev.b_number, region, alphanumeric=False)
        sms = SmsMeta(ev.sms.segments, ev.sms.has_url, ev.sms.chars) if ev.sms is not None else None
        call = CallMeta(ev.call.duration_s, ev.call.answered) if ev.call is not None else None
        a_is_subscriber = ev.direction == "mo"
        subscriber = a if a_is_subscriber else b
        subscriber_role: Role = "out" if a_is_subscriber else "in"
        views = [
            View(view_id=digest + "no", entity_type="number",
                 entity=a.pseudonym, role="out", number_kind=a.number.kind, peer=b.pseudonym,
                 peer_kind=b.number.kind, subscriber=a_is_subscriber,
                 device=device if a_is_subscriber else None, tac=tac if a_is_subscriber else None,
                 imsi=imsi if a_is_subscriber else None, mccmnc=mccmnc if a_is_subscriber else None,
                 cell=cell if a_is_subscriber else None, sms=sms, call=call, number_enc=self._seal(a), **common),
            View(view_id=digest + "ni", entity_type="number",
                 entity=b.pseudonym, role="in", number_kind=b.number.kind, peer=a.pseudonym,
                 peer_kind=a.number.kind, subscriber=not a_is_subscriber,
                 device=None if a_is_subscriber else device, tac=None if a_is_subscriber else tac,
                 imsi=None if a_is_subscriber else imsi, mccmnc=None if a_is_subscriber else mccmnc,
                 cell=None if a_is_subscriber else cell, sms=sms, call=call, number_enc=self._seal(b), **common),
        ]
        if device is not None:
            views.append(View(
                view_id=digest + _SIDE_SUFFIX["device", subscriber_role], entity_type="device",
                entity=device, role=subscriber_role, number=subscriber.pseudonym,
                number_kind=subscriber.number.kind, peer=(b if a_is_subscriber else a).pseudonym,
                tac=tac, imsi=imsi, mccmnc=mccmnc, cell=cell, sms=sms, call=call,
                number_enc=self._seal(subscriber), **common,
            ))
        return views

    def _line_view(self, ev: RawEvent, region: str, digest: str, common: dict[str, Any]) -> View:
        """The number's ``change`` view of a call-forwarding or subscription lifecycle change (the
        line, not a handset: no device view, and the event's own device fields are not read)."""
        forwarding = subscription = None
        if ev.forwarding is not None:
            msisdn = ev.forwarding.msisdn
            forwarding = ForwardingMeta(action=ev.forwarding.action, kind=ev.forwarding.kind)  # type: ignore[arg-type]
        else:
            assert ev.subscription is not None
            msisdn = ev.subscription.msisdn
            subscription = SubscriptionMeta(change=ev.subscription.change,  # type: ignore[arg-type]
                                            contract=ev.subscription.contract)  # type: ignore[arg-type]
        subject = self._number(msisdn, region, alphanumeric=False)
        return View(view_id=digest + "nc", entity_type="number", entity=subject.pseudonym, role="change",
                    number_kind=subject.number.kind, forwarding=forwarding, subscription=subscription,
                    number_enc=self._seal(subject), **common)
