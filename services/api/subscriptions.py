"""CAMARA SIM Swap Subscriptions 0.3.0: subscriptions as partner state, swaps detected where
the API materialises ``fraudradar.risk``, CloudEvents delivered by the webhook dispatcher.

* **State.** A subscription is a ``SimSwapSubscription`` record on the compacted
  ``fraudradar.partner-state`` topic, so every replica (and a restarted one) has it. It holds the
  number's pseudonym, the number as the partner sent it sealed with the disclosure key (bound to
  the pseudonym, as alerts keep numbers) for ``data.phoneNumber``, and the sink's access token
  sealed bound to the subscription id. No plaintext number or token is stored.
* **One deliverer.** Only the replica that delivers the partner's webhooks (``Dispatcher.owns``)
  detects swaps, ends subscriptions and delivers: through a ``Sink`` worker of the dispatcher
  (its queue, retries with backoff and SSRF check before every attempt).
* **Swaps.** A risk record of a subscribed number whose ``sim_changed_at`` is later than the
  last swap the subscription was told about (at creation: the number's current one, or the
  creation time) is a ``swapped`` event. When it is settled (delivered, or given up after the
  dispatcher's attempts) the owner writes the new count and swap time, so a restarted owner,
  replaying the risk topic, neither repeats settled swaps nor loses unsettled ones.
* **Ends.** ``subscription-ended`` with the spec's reasons: ``SUBSCRIPTION_EXPIRED`` (expiry
  time), ``MAX_EVENTS_REACHED``, ``SUBSCRIPTION_DELETED``, ``ACCESS_TOKEN_EXPIRED``
  (``TOKEN_LEAD_S`` before the sink's token expires, so the notification still carries a valid
  token), ``NETWORK_TERMINATED`` (the partner was removed or lost the create scope). The
  record is marked ended (partners no longer see it) and removed (tombstone) once the ended
  notification is settled.
* **Order of writes.** ``revision`` grows with every write; a record is applied only over a
  lower revision, except that an end is final: an ended record wins over any active one (a
  delete written by a replica with a stale view, racing the owner's count updates, still ends
  the subscription on every replica) and an active one never revives an ended one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from services.api.partner_state import SimSwapSubscription
from services.api.store import now_iso, parse_time
from services.api.webhooks import Sink, WebhookEvent
from services.common.pseudonym import DisclosureError
from services.common.records import AuditRecord, Risk, encode

if TYPE_CHECKING:
    from services.api.service import ApiService

log = logging.getLogger("fraudradar.api.subscriptions")

BASE_PATH = "/sim-swap-subscriptions/v0.3"
SWAPPED = "org.camaraproject.sim-swap-subscriptions.v0.swapped"
ENDED = "org.camaraproject.sim-swap-subscriptions.v0.subscription-ended"
KEY_PREFIX = "simswapsub:"
TOKEN_LEAD_S = 5.0  # the ACCESS_TOKEN_EXPIRED notification goes out this long before expiry
TICK_S = 0.25
DESCRIPTIONS = {
    "SUBSCRIPTION_EXPIRED": "subscription expire time reached",
    "MAX_EVENTS_REACHED": "maximum number of events reached",
    "SUBSCRIPTION_DELETED": "subscription deleted by the requester",
    "ACCESS_TOKEN_EXPIRED": "the sink access token expires",
    "NETWORK_TERMINATED": "the partner may no longer subscribe (removed, or the scope revoked)",
}
CREATE_SCOPE = "sim-swap-subscriptions:org.camaraproject.sim-swap-subscriptions.v0.swapped:create"
_GONE_MAX = 100_000


def token_aad(subscription_id: str) -> str:
    return f"simswap-sink:{subscription_id}"


def key_of(partner: str, subscription_id: str) -> str:
    return f"{KEY_PREFIX}{partner}:{subscription_id}"


@dataclass(frozen=True)
class _Due:
    at: float
    reason: str


def _due(sub: SimSwapSubscription) -> _Due:
    """When the subscription ends by time, and why (the earlier of expiry and token expiry)."""
    expires = parse_time(sub.expires_at)
    if sub.token_expires_at is not None:
        token_end = parse_time(sub.token_expires_at) - TOKEN_LEAD_S
        if token_end < expires:
            return _Due(token_end, "ACCESS_TOKEN_EXPIRED")
    return _Due(expires, "SUBSCRIPTION_EXPIRED")


class SubscriptionManager:
    """The subscriptions this replica knows (all of them) and the delivery of the ones it owns.

    Runs on the event loop thread only (state changes arrive there, like every partner-state
    record), so it needs no locks."""

    def __init__(self, service: ApiService) -> None:
        self.service = service
        self.subs: dict[str, SimSwapSubscription] = {}  # id -> record (active, or ended and unsettled)
        self.by_entity: dict[str, dict[str, SimSwapSubscription]] = {}  # "number:<pseudonym>" -> active
        self.by_partner: dict[str, dict[str, SimSwapSubscription]] = {}  # partner -> id -> active
        self._due: dict[str, _Due] = {}  # active id -> when it ends by time
        self._gone: dict[str, None] = {}  # removed ids (a late echo of an older record is ignored)
        self._pending: set[str] = set()  # events offered and not settled yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._entitled: set[str] = set()  # partners checked to still hold the create scope

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self.service.dispatcher is not None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever(), name="simswap-subs")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    # -- what partners see -----------------------------------------------------------------

    def active_of(self, partner_id: str) -> list[SimSwapSubscription]:
        return sorted(self.by_partner.get(partner_id, {}).values(), key=lambda s: s.created_at)

    def get(self, partner_id: str, subscription_id: str) -> SimSwapSubscription | None:
        return self.by_partner.get(partner_id, {}).get(subscription_id)

    # -- partner-state records -------------------------------------------------------------

    def on_state(self, key: str, record: SimSwapSubscription | None) -> None:
        """Apply one record (or tombstone) of the partner-state topic; idempotent."""
        sub_id = key.split(":", 2)[2]
        current = self.subs.get(sub_id)
        if record is None:
            if current is not None:
                self._unindex(current)
                del self.subs[sub_id]
            self._gone[sub_id] = None
            if len(self._gone) > _GONE_MAX:
                del self._gone[next(iter(self._gone))]
            self._sync(sub_id, None)
            return
        if sub_id in self._gone or (current is not None and not _newer(record, current)):
            return
        if current is not None:
            self._unindex(current)
        self.subs[sub_id] = record
        if record.ended is None:
            self.by_entity.setdefault(f"number:{record.entity}", {})[sub_id] = record
            self.by_partner.setdefault(record.partner, {})[sub_id] = record
            self._due[sub_id] = _due(record)
        self._sync(sub_id, record)
        if record.ended is not None:
            self._offer(record, ENDED, "ended", now_iso())

    def _unindex(self, sub: SimSwapSubscription) -> None:
        sub_id = sub.subscription_id
        entity_key = f"number:{sub.entity}"
        subs = self.by_entity.get(entity_key)
        if subs is not None:
            subs.pop(sub_id, None)
            if not subs:
                del self.by_entity[entity_key]
        mine = self.by_partner.get(sub.partner)
        if mine is not None:
            mine.pop(sub_id, None)
            if not mine:
                del self.by_partner[sub.partner]
        self._due.pop(sub_id, None)

    def _owned(self, sub: SimSwapSubscription) -> bool:
        dispatcher = self.service.dispatcher
        return dispatcher is not None and dispatcher.owns(sub.partner)

    def _sync(self, sub_id: str, record: SimSwapSubscription | None) -> None:
        dispatcher = self.service.dispatcher
        if dispatcher is None:
            return
        if record is None:
            dispatcher.sync_sink(sub_id, None)
            return
        dispatcher.sync_sink(
            sub_id,
            Sink(
                target_id=sub_id,
                partner=record.partner,
                url=record.sink,
                render=lambda event: self._render(sub_id, event),
                settled=lambda event, delivered: self._settled(sub_id, event, delivered),
            ),
        )

    # -- detection (owner only) ------------------------------------------------------------

    def risk_changed(self, entity_key: str, risk: Risk | None) -> None:
        """A materialised risk record of a subscribed number: a later SIM change is a swap."""
        if risk is None or risk.sim_changed_at is None:
            return
        try:
            swapped_at = parse_time(risk.sim_changed_at)
        except ValueError:
            return
        for sub in list(self.by_entity.get(entity_key, {}).values()):
            if self._owned(sub) and swapped_at > parse_time(sub.last_swap_at):
                self._offer(sub, SWAPPED, risk.sim_changed_at, risk.sim_changed_at)

    def _offer(self, sub: SimSwapSubscription, event_type: str, mark: str, occurred_at: str) -> None:
        dispatcher = self.service.dispatcher
        if dispatcher is None or not dispatcher.owns(sub.partner):
            return
        pending = f"{sub.subscription_id}|{event_type}|{mark}"
        if pending in self._pending:
            return
        self._pending.add(pending)
        event_id = hashlib.sha256(pending.encode()).hexdigest()[:32]
        data = {"pending": pending, "eventId": event_id, "mark": mark}
        dispatcher.offer(sub.subscription_id, WebhookEvent("simswapsub", 0, event_type, data, occurred_at))

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick(self.service.clock())
            except Exception:  # a bad record must not stop expiry for everyone else
                log.exception("subscription expiry check failed")

    def tick(self, now: float) -> None:
        """End the owned subscriptions whose time is up (expiry or sink token expiry), and those
        of partners that may no longer subscribe (removed from the partners file, or the create
        scope taken away: ``NETWORK_TERMINATED``, the spec's "server stopped sending")."""
        for sub_id, due in list(self._due.items()):
            sub = self.subs.get(sub_id)
            if sub is None or sub.ended is not None or not self._owned(sub):
                continue
            reason = due.reason if due.at <= now else None
            if reason is None and sub.partner not in self._entitled:
                partner = self.service.partners.get(sub.partner)
                if partner is None or CREATE_SCOPE not in partner.granted:
                    reason = "NETWORK_TERMINATED"
                else:
                    self._entitled.add(sub.partner)  # the partners file is read once, at start
            if reason is not None:
                self._write(msgspec.structs.replace(sub, ended=reason, revision=sub.revision + 1))

    # -- delivery (owner only) -------------------------------------------------------------

    def _render(self, sub_id: str, event: WebhookEvent) -> tuple[bytes, dict[str, str]] | None:
        sub = self.subs.get(sub_id)
        if sub is None:
            return None
        if event.event_type == SWAPPED and (
            sub.ended is not None or (sub.max_events is not None and sub.events >= sub.max_events)
        ):
            self._pending.discard(event.data["pending"])
            return None  # ended while the swap waited in the queue
        data: dict[str, Any] = {"subscriptionId": sub_id}
        phone = self.service.disclose(sub.number_enc, sub.entity)
        if phone:
            data["phoneNumber"] = phone
        if event.event_type == ENDED:
            data["terminationReason"] = sub.ended
            data["terminationDescription"] = DESCRIPTIONS.get(sub.ended or "", "subscription ended")
        cloud_event = {
            "id": event.data["eventId"],
            "source": self.service.settings.public_url.rstrip("/") + BASE_PATH,
            "type": event.event_type,
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "time": event.occurred_at,
            "data": data,
        }
        headers = {"content-type": "application/cloudevents+json", "x-correlator": event.data["eventId"]}
        if sub.token_enc is not None:
            discloser = self.service.discloser
            try:
                if discloser is None:
                    raise DisclosureError("no disclosure key")
                headers["authorization"] = "Bearer " + discloser.open(sub.token_enc, token_aad(sub_id))
            except DisclosureError:
                log.warning("subscription %s: the sink token does not open; not delivered", sub_id)
                self._pending.discard(event.data["pending"])
                return None
        return orjson.dumps(cloud_event), headers

    def _settled(self, sub_id: str, event: WebhookEvent, delivered: bool) -> None:
        self._pending.discard(event.data["pending"])
        sub = self.subs.get(sub_id)
        if sub is None:
            return
        kind = "swapped" if event.event_type == SWAPPED else "subscription-ended"
        self._audit(sub, f"sim-swap-subscriptions:notify:{kind}", "delivered" if delivered else "gave-up")
        if event.event_type == ENDED:
            self._remove(sub)
            return
        if sub.ended is not None:
            return
        events = sub.events + 1
        mark = str(event.data["mark"])
        last = mark if parse_time(mark) > parse_time(sub.last_swap_at) else sub.last_swap_at
        ended = "MAX_EVENTS_REACHED" if sub.max_events is not None and events >= sub.max_events else None
        self._write(
            msgspec.structs.replace(sub, events=events, last_swap_at=last, ended=ended, revision=sub.revision + 1)
        )

    # -- writes of the owner: applied here at once, then made durable ----------------------

    def _write(self, record: SimSwapSubscription) -> None:
        self.on_state(key_of(record.partner, record.subscription_id), record)
        self._spawn(self.service.put_state(record), record.subscription_id)

    def _remove(self, sub: SimSwapSubscription) -> None:
        key = key_of(sub.partner, sub.subscription_id)
        self.on_state(key, None)
        self._spawn(self.service.delete_state(key), sub.subscription_id)

    def _spawn(self, write: Any, sub_id: str) -> None:
        async def run() -> None:
            try:
                await write
            except Exception:  # logged; the owner's view is ahead until the next write
                log.exception("subscription %s: partner-state write failed", sub_id)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _audit(self, sub: SimSwapSubscription, action: str, level: str) -> None:
        producer = self.service.producer
        if producer is None:
            return
        record = AuditRecord(
            audit_id=f"{sub.subscription_id}-{action}-{sub.revision}",
            at=now_iso(),
            partner=sub.partner,
            purpose=sub.purpose,
            action=action,
            entity_type="number",
            entity=sub.entity,
            answer_level=level,
            correlator=None,
        )
        try:
            producer.send_audit(self.service.topic_audit, f"number:{sub.entity}", encode(record))
        except Exception:
            log.exception("subscription %s: audit record not queued", sub.subscription_id)


def _newer(record: SimSwapSubscription, current: SimSwapSubscription) -> bool:
    """Whether ``record`` supersedes ``current``: an end is final (it wins over any active
    version, whatever its revision: a delete written from a stale view still ends it, and a
    late active version never revives it); otherwise the higher revision wins."""
    if (record.ended is None) != (current.ended is None):
        return record.ended is not None
    return record.revision > current.revision
