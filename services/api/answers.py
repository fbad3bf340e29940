"""What a partner is told: risk answers and alert views cut to its entitlement, who may see an
alert, and the contacts a report or contest needs. ``ApiService`` mixes these in; they read its
stores and never mutate them (except the contact book, on the event loop thread)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from services.api.partners import Partner
from services.api.store import AlertLog, Contacts, PartnerStateStore, RiskStore, parse_time
from services.common.pseudonym import Discloser, DisclosureError
from services.common.records import LEVELS, Alert, Reason, Risk

log = logging.getLogger("fraudradar.api")

NO_SIGNAL: dict[str, Any] = {"signal": False, "level": "none"}
_LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}
_PIN_SCORE = {"low": 25, "medium": 50, "high": 75, "critical": 90}


def _reason_out(reason: Reason, partner: Partner) -> dict[str, Any]:
    out: dict[str, Any] = {"code": reason.code, "text": reason.text}
    if partner.tier_at_least("full"):
        out.update(feature=reason.feature, value=reason.value, window=reason.window, rarity=reason.rarity)
    return out


def _raised(alert: Alert) -> float:
    """When the alert was raised (epoch s); unreadable: the far past, so no watch-list shows it."""
    try:
        return parse_time(alert.raised_at)
    except ValueError:
        return float("-inf")


class Answers:
    """The answer methods of ``ApiService`` (its stores are declared here for them)."""

    risk: RiskStore
    alerts: AlertLog
    pstate: PartnerStateStore
    contacts: Contacts
    discloser: Discloser | None
    clock: Callable[[], float]

    # -- answers -------------------------------------------------------------------------

    def effective(self, entity_key: str, now: float) -> tuple[str, Risk | None, Any]:
        """The level a partner is told (after expiry and operator overrides), with its sources."""
        risk = self.risk.get(entity_key)
        level = "none"
        if risk is not None and risk.level != "none" and parse_time(risk.expires_at) > now:
            level = risk.level
        override = self.pstate.active_override(entity_key, now) if self.pstate.overrides_by_entity else None
        if override is not None:
            level = "none" if override.action == "clear" else (override.level or level)
        return level, risk, override

    def risk_answer(self, partner: Partner, entity_key: str) -> tuple[dict[str, Any], str]:
        """The lookup answer cut to the partner's tier, and the level for the audit record.

        Fields without a value are left out (never ``null``): the answer is sent as built,
        without a pass through the response model (``RiskAnswer`` documents it)."""
        now = self.clock()
        level, risk, override = self.effective(entity_key, now)
        if level == "none":
            return dict(NO_SIGNAL), "none"
        out: dict[str, Any] = {"signal": True, "level": level}
        if partner.tier_at_least("score"):
            if risk is not None and risk.level != "none" and (override is None or override.action != "pin"):
                out.update(
                    score=risk.score,
                    updatedAt=risk.updated_at,
                    expiresAt=risk.expires_at,
                    modelVersion=risk.model_version,
                )
                if risk.first_flagged_at is not None:
                    out["firstFlaggedAt"] = risk.first_flagged_at
            else:
                out.update(
                    score=_PIN_SCORE[level],
                    updatedAt=override.created_at,
                    expiresAt=override.expires_at,
                    modelVersion="operator-override",
                )
        if partner.tier_at_least("reasons"):
            reasons = (
                [_reason_out(r, partner) for r in risk.reasons]
                if risk is not None and (override is None or override.action != "pin")
                else []
            )
            if override is not None and override.action == "pin":
                reasons.insert(0, {"code": "OPERATOR_PIN", "text": f"pinned at {level} by the operator"})
            out["reasons"] = reasons
            if risk is not None and risk.campaign_id:
                out["campaignId"] = risk.campaign_id
        if partner.tier_at_least("full") and risk is not None:
            if risk.sim_changed_at is not None:
                out["simChangedAt"] = risk.sim_changed_at
            if risk.device_changed_at is not None:
                out["deviceChangedAt"] = risk.device_changed_at
        return out, level

    def subject_ref(self, partner: Partner, entity_type: str, entity: str) -> str:
        return hashlib.sha256(f"{partner.id}:{entity_type}:{entity}".encode()).hexdigest()[:24]

    def alert_visible(self, partner: Partner, alert: Alert) -> bool:
        if partner.alerts == "none" or "alerts:read" not in partner.granted:
            return False
        if alert.entity_type == "device" and partner.type not in ("telco", "operator"):
            return False
        if _LEVEL_RANK[alert.level] < _LEVEL_RANK[partner.alert_min_level]:
            return False
        key = f"{alert.entity_type}:{alert.entity}"
        if partner.type != "operator" and self.pstate.overrides_by_entity:
            override = self.pstate.active_override(key, self.clock())
            if override is not None and override.action == "clear":
                return False
        if partner.alerts == "watchlist":
            return bool(self.pstate.is_watched_by(partner.id, key, _raised(alert)))
        return True

    def touch(self, partner: Partner, entity_key: str) -> None:
        """Remember that ``partner`` looked up (or watched) ``entity_key`` now."""
        self.contacts.touch(partner.id, entity_key, self.clock())

    def had_contact(self, partner: Partner, entity_key: str) -> bool:
        """The partner looked the entity up, watched it, or was shown an alert on it within the
        retention window: what a report or contest needs."""
        if self.contacts.had(partner.id, entity_key, self.clock()):
            return True
        if self.pstate.is_watched_by(partner.id, entity_key):  # shared by every replica
            return True
        return any(self.alert_visible(partner, e.alert) for e in self.alerts.by_entity.get(entity_key, ()))

    def alert_view(self, partner: Partner, alert: Alert) -> dict[str, Any]:
        key = f"{alert.entity_type}:{alert.entity}"
        out: dict[str, Any] = {
            "alertId": alert.alert_id,
            "entityType": alert.entity_type,
            "subjectRef": self.subject_ref(partner, alert.entity_type, alert.entity),
            "level": alert.level,
            "raisedAt": alert.raised_at,
        }
        watched = self.pstate.is_watched_by(partner.id, key, _raised(alert))
        if watched:
            out["watchIds"] = [w.entry_id for w in watched]
        if partner.tier_at_least("score"):
            out.update(
                score=alert.score,
                modelVersion=alert.model_version,
                window={"start": alert.window.start, "end": alert.window.end},
            )
        if partner.tier_at_least("reasons"):
            out["reasons"] = [_reason_out(r, partner) for r in alert.reasons]
            if alert.campaign_id:
                out["campaignId"] = alert.campaign_id
        if partner.tier_at_least("full"):
            out["evidence"] = dict(alert.evidence)
            number = self.disclose(alert.number_enc, alert.entity)
            if number:
                out["phoneNumber"] = number
        return out

    def disclose(self, number_enc: str | None, entity: str) -> str | None:
        if not number_enc or self.discloser is None:
            return None
        try:
            return self.discloser.open(number_enc, entity)
        except DisclosureError:
            log.warning("a disclosure token did not open (key rotation?)")
            return None
