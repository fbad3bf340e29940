"""Small builders of views for the scorer's unit tests."""

from __future__ import annotations

import hashlib

from services.common.records import CallMeta, ForwardingMeta, SimMeta, SmsMeta, SubscriptionMeta, View

T0 = 1_790_000_000_000   # event time of the tests (2026-09-21)
MIN = 60_000


def pid(name: str) -> str:
    """A stable 32-hex pseudonym for a test name (never a real identifier)."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def sms_out(entity: str, peer: str, t_ms: int, *, url: bool = False, device: str | None = None,
            cell: str | None = None, n: int = 0) -> View:
    return View(view_id=pid(f"{entity}{peer}{t_ms}{n}out"), entity_type="number", entity=entity, role="out",
                type="sms", operator="op", occurred_ms=t_ms, ingested_ms=t_ms, key_id="k", peer=peer,
                peer_kind="e164", number_kind="e164", sms=SmsMeta(has_url=url), device=device, cell=cell)


def sms_in(entity: str, peer: str, t_ms: int, *, peer_kind: str = "e164") -> View:
    return View(view_id=pid(f"{entity}{peer}{t_ms}in"), entity_type="number", entity=entity, role="in",
                type="sms", operator="op", occurred_ms=t_ms, ingested_ms=t_ms, key_id="k", peer=peer,
                peer_kind=peer_kind, number_kind="e164", sms=SmsMeta())  # type: ignore[arg-type]


def call_out(entity: str, peer: str, t_ms: int, *, duration: float = 60.0, answered: bool = True) -> View:
    return View(view_id=pid(f"{entity}{peer}{t_ms}call"), entity_type="number", entity=entity, role="out",
                type="call", operator="op", occurred_ms=t_ms, ingested_ms=t_ms, key_id="k", peer=peer,
                peer_kind="e164", number_kind="e164", call=CallMeta(duration_s=duration, answered=answered))


def sim_change(entity: str, t_ms: int, change: str = "swap", device: str | None = None) -> View:
    return View(view_id=pid(f"{entity}{t_ms}{change}"), entity_type="number", entity=entity, role="change",
                type="sim", operator="op", occurred_ms=t_ms, ingested_ms=t_ms, key_id="k",
                sim=SimMeta(change=change, device=device), device=device)  # type: ignore[arg-type]


def device_view(device: str, number: str, imsi: str, t_ms: int, peer: str) -> View:
    return View(view_id=pid(f"{device}{number}{imsi}{t_ms}{peer}"), entity_type="device", entity=device,
                role="out", type="sms", operator="op", occurred_ms=t_ms, ingested_ms=t_ms, key_id="k",
                number=number, imsi=imsi, peer=peer, sms=SmsMeta(), tac="35693803")


def forwarding(entity: str, t_ms: int, action: str = "set", kind: str = "unconditional") -> View:
    return View(view_id=pid(f"{entity}{t_ms}{action}{kind}"), entity_type="number", entity=entity, role="change",
                type="forwarding", operator="op", occurred_ms=t_ms, ingested_ms=t_ms, key_id="k",
                forwarding=ForwardingMeta(action=action, kind=kind))  # type: ignore[arg-type]


def subscription(entity: str, t_ms: int, change: str = "new", contract: str | None = "PAYM") -> View:
    return View(view_id=pid(f"{entity}{t_ms}{change}"), entity_type="number", entity=entity, role="change",
                type="subscription", operator="op", occurred_ms=t_ms, ingested_ms=t_ms, key_id="k",
                subscription=SubscriptionMeta(change=change, contract=contract))  # type: ignore[arg-type]
