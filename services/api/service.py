"""The API's core: materialised state, answers cut to a partner's entitlement, and outputs.

``ApiService`` owns the stores, the materialiser, the webhook dispatcher and the producer.
Routes ask it questions (``risk_answer``, ``alert_view``) and tell it facts (``audit``,
``put_state``); it never knows about HTTP. State is mutated only on the event loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from services.api import call_push
from services.api.answers import Answers
from services.api.call_service import CallService
from services.api.config import ApiSettings
from services.api.exceptions import AuditUnavailable, Unavailable
from services.api.identifiers import EntityResolver
from services.api.kafka_io import Change, Materialiser, Producer
from services.api.limits import DailyCounter, Limiter
from services.api.metrics import AUDIT_UNACKED_SECONDS
from services.api.partner_state import (
    AssertionUse,
    DeliveryCursor,
    StateRecord,
    Usage,
    Webhook,
    encode_state,
    state_key,
)
from services.api.partners import PartnerRegistry
from services.api.store import (
    AlertEntry,
    AlertIds,
    AlertLog,
    Contacts,
    PartnerStateStore,
    RiskStore,
    now_iso,
    parse_time,
)
from services.api.subscriptions import KEY_PREFIX as SUBSCRIPTION_KEY_PREFIX
from services.api.subscriptions import SubscriptionManager
from services.api.tokens import Principal
from services.api.webhooks import Dispatcher, UrlPolicy, WebhookEvent
from services.common import topics
from services.common.pseudonym import Discloser
from services.common.records import Alert, AuditRecord, Feedback, Risk, encode

log = logging.getLogger("fraudradar.api")

PARTNER_STATE = topics.PARTNER_STATE
USAGE_PUBLISH_S = 0.5  # how often a replica publishes its changed quota and budget counts


class ApiService(Answers):
    """The stores, materialiser, webhook dispatcher and producer of one replica (answers: ``Answers``)."""

    def __init__(
        self,
        settings: ApiSettings,
        partners: PartnerRegistry,
        *,
        resolver: EntityResolver,
        discloser: Discloser | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.partners = partners
        self.discloser = discloser
        self.clock = clock
        self.risk = RiskStore()
        self.alerts = AlertLog(settings.alerts_retention_s)
        self.alert_ids = AlertIds()
        self.pstate = PartnerStateStore()
        self.positions: dict[str, int] = {}  # "topic:partition" -> next offset materialised
        self.topic_risk = settings.topic(topics.RISK)
        self.topic_alerts = settings.topic(topics.ALERTS)
        self.topic_state = settings.topic(PARTNER_STATE)
        self.topic_audit = settings.topic(topics.AUDIT)
        self.topic_feedback = settings.topic(topics.FEEDBACK)
        # This process's name on fraudradar.partner-state usage records (new at every start, so
        # a restarted replica still counts what it admitted before under its old name).
        self.replica_id = uuid.uuid4().hex[:12]
        self.limiter = Limiter(
            clock,
            settings.limits_divisor,
            others=lambda p, k, w: self.pstate.others_usage(p, k, w, self.replica_id),
        )
        self._publisher: asyncio.Task[None] | None = None
        self.contacts = Contacts(settings.alerts_retention_s)
        self.reports_today = DailyCounter(settings.reports_per_day, "reports", clock)
        self.contests_today = DailyCounter(settings.contests_per_day, "contests", clock)
        self.streams: dict[str, int] = {}  # partner -> alert streams open on this replica
        self.webhooks_pending: dict[str, int] = {}  # partner -> registrations being written
        self.resolver = resolver
        self.producer: Producer | None = None
        self.materialiser: Materialiser | None = None
        self.dispatcher: Dispatcher | None = None
        self._new_alerts: asyncio.Event | None = None
        self.sim_swap_subs = SubscriptionManager(self)  # CAMARA SIM Swap subscriptions
        # live call state (fraudradar.calls) and pre-announcements: services/api/call_service.py
        self.calls = CallService(settings, resolver, lambda p: self.effective(f"number:{p}", self.clock())[0], clock,
                                 lambda: self.producer)
        self.calls.on_new_call = lambda *args: call_push.offer(self, *args)
        self._last_evict = 0.0
        # unique audit ids without a syscall per lookup: random per process, then a counter
        self._audit_prefix = uuid.uuid4().hex[:16]
        self._audit_seq = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._new_alerts = asyncio.Event()
        kafka = self.settings.kafka_config()
        self.producer = Producer(kafka, delivery_timeout_s=self.settings.audit_delivery_timeout_s)
        producer = self.producer
        AUDIT_UNACKED_SECONDS.set_function(producer.audit_stalled_s)
        if self.settings.webhook_delivery:
            # Only the fixed-size delivery replicas deliver (docs/api.md "Webhook delivery"):
            # an autoscaled lookup replica has no stable index, so it never owns a partner.
            self.dispatcher = Dispatcher(
                policy=UrlPolicy(self.settings.webhook_allow_http, self.settings.webhook_allow_private),
                replica_index=self.settings.delivery_index(),
                replica_count=self.settings.replica_count,
                timeout_s=self.settings.webhook_timeout_s,
                max_attempts=self.settings.webhook_max_attempts,
                backoff_s=self.settings.webhook_backoff_s,
                open_secret=self.open_webhook_secret,
                save_cursor=self._save_cursor,
            )
            log.info(
                "webhook delivery: index %d of %d", self.settings.delivery_index(), self.settings.replica_count
            )
        self.materialiser = Materialiser(
            kafka,
            {"risk": self.topic_risk, "alert": self.topic_alerts, "state": self.topic_state},
            self.settings.alerts_retention_s,
            self.apply,
            loop,
        )
        self.materialiser.start()
        self.calls.start(kafka, loop)
        self._publisher = asyncio.create_task(self._publish_usage())
        self.sim_swap_subs.start()

    async def _publish_usage(self) -> None:
        """Publish this replica's changed quota and budget counts (shared limits)."""
        while True:
            await asyncio.sleep(USAGE_PUBLISH_S)
            self.publish_usage()

    def publish_usage(self) -> None:
        dirty, self.limiter.dirty = self.limiter.dirty, set()
        if self.producer is None:
            return
        for partner, kind, window in dirty:
            count = self.limiter.count(partner, kind, window)
            record = Usage(partner, kind, window, self.replica_id, count)  # type: ignore[arg-type]
            self.producer.send(self.topic_state, state_key(record), encode_state(record))

    def record_assertion(self, partner: str, jti: str, expires_at: float) -> None:
        """A client assertion was used here: every replica refuses it from now on."""
        if self.producer is not None:
            record = AssertionUse(partner, jti, expires_at)
            self.producer.send(self.topic_state, state_key(record), encode_state(record))

    def assertion_used(self, key: str) -> bool:
        return self.pstate.assertions.get(key, 0.0) > self.clock()

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            self.publish_usage()
        if self.materialiser is not None:
            await asyncio.to_thread(self.materialiser.stop)
        await self.sim_swap_subs.stop()
        await self.calls.stop()
        if self.dispatcher is not None:
            await self.dispatcher.close()
        if self.producer is not None:
            await asyncio.to_thread(self.producer.close)

    @property
    def caught_up(self) -> bool:
        """Caught up with the risk, alert and partner-state topics (the feeds need this)."""
        m = self.materialiser
        return m is not None and m.ready.is_set() and m.failed is None

    @property
    def ready(self) -> bool:
        """Caught up (the live call state too), and the audit trail takes records (lookups need
        both): ``/readyz``."""
        return self.caught_up and self.calls.ready and not self.audit_stalled

    def require_lookup_ready(self) -> None:
        """Raise the 503 a lookup answers while it cannot be answered and audited."""
        if not self.caught_up:
            raise Unavailable()
        if self.audit_stalled:
            raise AuditUnavailable()

    @property
    def audit_stalled(self) -> bool:
        p = self.producer
        return p is not None and p.audit_stalled_s() > self.settings.audit_stall_s

    # -- materialised changes (event loop thread) ------------------------------------------

    def apply(self, changes: list[Change]) -> None:
        alerts_added = False
        for change in changes:
            if change.kind == "risk":
                new = change.value if isinstance(change.value, Risk) else None
                old = self.risk.put(change.key, new)
                if change.key in self.pstate.watchers:
                    self._risk_changed(change, old, new)
                if change.key in self.sim_swap_subs.by_entity:
                    self.sim_swap_subs.risk_changed(change.key, new)
                self.positions[f"{self.topic_risk}:{change.partition}"] = change.offset + 1
            elif change.kind == "alert" and isinstance(change.value, Alert):
                if not self.alert_ids.first_time(change.value.alert_id):
                    # a redelivery (scorer crash/rebalance): partners see each alert once
                    self.positions[f"{self.topic_alerts}:{change.partition}"] = change.offset + 1
                    continue
                try:
                    raised = parse_time(change.value.raised_at)
                except ValueError:
                    raised = change.timestamp_ms / 1000
                entry = AlertEntry(change.partition, change.offset, change.value, raised)
                self.alerts.append(entry)
                alerts_added = True
                self._alert_raised(entry)
                self.positions[f"{self.topic_alerts}:{change.partition}"] = change.offset + 1
            elif change.kind == "state":
                self._state_changed(change.key, change.value)  # type: ignore[arg-type]
        now = self.clock()
        if now - self._last_evict > 60:
            self._last_evict = now
            self.alerts.evict(now)
        if alerts_added and self._new_alerts is not None:
            self._new_alerts.set()
            self._new_alerts = asyncio.Event()

    def _state_changed(self, key: str, record: StateRecord | None) -> None:
        if key.startswith(SUBSCRIPTION_KEY_PREFIX):
            self.sim_swap_subs.on_state(key, record)  # type: ignore[arg-type]
            return
        previous = self.pstate.by_key.get(key)
        self.pstate.apply(key, record)
        if isinstance(record, Usage | AssertionUse) and self._stale(record) and self.producer is not None:
            self.producer.send(self.topic_state, key, None)  # past its window: compacted away
        if self.dispatcher is None:
            return
        if isinstance(record, Webhook) or isinstance(previous, Webhook):
            webhook_id = record.webhook_id if isinstance(record, Webhook) else previous.webhook_id  # type: ignore[union-attr]
            self.dispatcher.sync(
                record if isinstance(record, Webhook) else None,
                webhook_id,
                self.pstate.cursors.get(webhook_id),
            )
        elif isinstance(record, DeliveryCursor):
            self.dispatcher.update_cursor(record.webhook_id, record.positions)

    def _stale(self, record: Usage | AssertionUse) -> bool:
        now = self.clock()
        if isinstance(record, AssertionUse):
            return record.expires_at < now
        current = int(now // 86400) if record.kind == "quota" else int(now // 3600)
        return record.window < current - 1

    def new_alerts_event(self) -> asyncio.Event:
        assert self._new_alerts is not None
        return self._new_alerts

    # -- webhook events ------------------------------------------------------------------

    def _owned_webhooks(self, partner_id: str) -> list[Webhook]:
        if self.dispatcher is None or not self.dispatcher.owns(partner_id):
            return []
        return list(self.pstate.webhooks.get(partner_id, {}).values())

    def _alert_raised(self, entry: AlertEntry) -> None:
        if self.dispatcher is None:
            return
        for partner_id in list(self.pstate.webhooks):
            hooks = self._owned_webhooks(partner_id)
            partner = self.partners.get(partner_id)
            if not hooks or partner is None or not self.alert_visible(partner, entry.alert):
                continue
            event = WebhookEvent(
                f"{self.topic_alerts}:{entry.partition}",
                entry.offset,
                "alert.raised",
                self.alert_view(partner, entry.alert),
                entry.alert.raised_at,
            )
            for hook in hooks:
                self.dispatcher.offer(hook.webhook_id, event)

    def _risk_changed(self, change: Change, old: Risk | None, new: Risk | None) -> None:
        if self.dispatcher is None:
            return
        now = self.clock()
        old_level = old.level if old is not None and parse_time(old.expires_at) > now else "none"
        new_level = new.level if new is not None and parse_time(new.expires_at) > now else "none"
        if old_level == new_level:
            return
        for (partner_id, _), entry in list(self.pstate.watchers.get(change.key, {}).items()):
            hooks = self._owned_webhooks(partner_id)
            partner = self.partners.get(partner_id)
            if not hooks or partner is None:
                continue
            answer, _ = self.risk_answer(partner, change.key)
            data: dict[str, Any] = {"watchId": entry.entry_id, "previousLevel": old_level, **answer}
            if entry.reference:
                data["reference"] = entry.reference
            event = WebhookEvent(
                f"{self.topic_risk}:{change.partition}",
                change.offset,
                "risk.changed",
                data,
                new.updated_at if new is not None else now_iso(),
            )
            for hook in hooks:
                self.dispatcher.offer(hook.webhook_id, event)

    def open_webhook_secret(self, webhook: Webhook) -> str:
        if self.discloser is None:
            raise RuntimeError("the disclosure key is needed to seal webhook secrets")
        return self.discloser.open(webhook.secret_enc, f"webhook:{webhook.webhook_id}")

    def seal_webhook_secret(self, secret: str, webhook_id: str) -> str:
        if self.discloser is None:
            raise RuntimeError("the disclosure key is needed to seal webhook secrets")
        return self.discloser.seal(secret, f"webhook:{webhook_id}")

    def _save_cursor(self, cursor: DeliveryCursor) -> None:
        if self.producer is not None:
            self.producer.send(self.topic_state, state_key(cursor), encode_state(cursor))

    # -- outputs -------------------------------------------------------------------------

    def audit(  # noqa: PLR0917 - the fields of one audit record
        self,
        principal: Principal,
        action: str,
        entity_type: str,
        entity: str,
        answer_level: str,
        correlator: str | None = None,
    ) -> None:
        """One audit record per looked-up entity, queued before the answer is sent.

        Acknowledged asynchronously (``Producer.send_audit``: retried until acknowledged; the
        service is not ready while acknowledgements stall); raises ``AuditUnavailable`` (503)
        when the record cannot be queued, so no lookup is answered without its record."""
        self._audit_seq += 1
        record = AuditRecord(
            audit_id=f"{self._audit_prefix}-{self._audit_seq}",
            at=now_iso(),
            partner=principal.partner.id,
            purpose=principal.purpose,
            action=action,
            entity_type=entity_type,  # type: ignore[arg-type]
            entity=entity,
            answer_level=answer_level,
            correlator=correlator,
        )
        assert self.producer is not None
        self.producer.send_audit(self.topic_audit, f"{entity_type}:{entity}", encode(record))

    async def put_state(self, record: StateRecord) -> None:
        """Write a partner-state record durably, then apply it here (read-your-writes)."""
        key = state_key(record)
        assert self.producer is not None
        await asyncio.to_thread(self.producer.send_and_wait, self.topic_state, key, encode_state(record))
        self._state_changed(key, record)

    async def delete_state(self, key: str) -> None:
        assert self.producer is not None
        await asyncio.to_thread(self.producer.send_and_wait, self.topic_state, key, None)
        self._state_changed(key, None)

    async def send_feedback(self, feedback: Feedback) -> None:
        assert self.producer is not None
        await asyncio.to_thread(
            self.producer.send_and_wait,
            self.topic_feedback,
            f"{feedback.entity_type}:{feedback.entity}",
            encode(feedback),
        )
