"""Verdicts: an entity's Risk record and its alerts, and the campaign that groups it with others.

``Verdicts.decide`` turns a view's fused score into the entity's flag (decay, expiry, level
changes, SIM/device changes) and raises an Alert when the entity crosses into the alert level
outside a cooldown episode. Ids are deterministic (entity, episode start, model version), so a
replay or another replica produces the same ``alert_id``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from services.common.records import LEVELS, Alert, EntityType, Level, Link, Reason, Risk, View, Window
from services.scorer import layout as L
from services.scorer.output import EngineOutput, iso_ms, iso_s
from services.scorer.policy import Policy
from services.scorer.record import fp64


class Verdicts:
    """Risk records and alerts of one partition, from its policy."""

    def __init__(self, policy: Policy, model_version: str) -> None:
        self.policy = policy
        self.model_version = model_version
        self.alert_rank = LEVELS.index(policy.alert_level)

    def decide(self, values: list[Any], view: View, score: int, *, reasons: list[Reason],
               features: dict[str, float], changed: bool, now_ms: int, output: EngineOutput) -> None:
        """Update the entity's flag in ``values`` and put its Risk (when it changed) and Alert on ``output``."""
        policy = self.policy
        now_s = now_ms // 1000
        prev_score = int(values[L.RISK_SCORE])
        prev_rank = int(values[L.RISK_LEVEL])
        # flags decay: the last emitted score halves every flags.ttl[low]
        if prev_score and values[L.RISK_AT_S]:
            elapsed = max(0, now_s - int(values[L.RISK_AT_S]))
            held = prev_score * 0.5 ** (elapsed * 1000 / policy.flag_ttl_ms["low"])
        else:
            held = 0.0
        reported = max(score, round(held))
        level: Level = policy.level_of(reported)
        rank = LEVELS.index(level)
        if rank >= 1:
            if not values[L.FLAG_FIRST_S]:
                values[L.FLAG_FIRST_S] = now_s
            if score >= policy.levels.low:
                expiry = now_s + policy.flag_ttl_ms[policy.level_of(score)] // 1000
                values[L.FLAG_EXPIRES_S] = max(values[L.FLAG_EXPIRES_S], expiry)
        emit = changed or rank != prev_rank or (
            rank >= 1 and abs(reported - prev_score) >= policy.spec.flags.min_score_change)
        campaign = self.campaign(values, view.entity_type) if rank >= 2 else None
        if emit:
            values[L.RISK_SCORE] = reported
            values[L.RISK_LEVEL] = rank
            values[L.RISK_AT_S] = now_s
            if rank >= 1 or has_dates(values):
                output.risk = self.risk(values, view.entity_type, view.entity, score=reported, level=level,
                                        reasons=reasons, now_ms=now_ms, campaign=campaign,
                                        number_enc=view.number_enc, key_id=view.key_id)
        if rank >= self.alert_rank and score >= policy.level_floor[policy.alert_level]:
            in_episode = values[L.EPISODE_S] and now_s - values[L.LAST_HIGH_S] <= policy.cooldown_ms // 1000
            if not in_episode:
                values[L.EPISODE_S] = now_s
                output.alerts = [self.alert(values, view, score=score, level=level, reasons=reasons,
                                            features=features, now_ms=now_ms, campaign=campaign)]
            values[L.LAST_HIGH_S] = now_s

    def campaign(self, values: list[Any], entity_type: EntityType) -> str | None:
        """Group entities acting together from what they share: a site (cell) and a day, else a device.

        A farm is a place: its modems or phones and every SIM in them are served by the same
        cell(s), while each modem is a device of its own, so anchoring on the device would split
        one farm into a campaign per modem. The anchor is the lowest fingerprint among the
        entity's recent cells (stable while it stays put, and shared by members that have seen
        the same cells) and the UTC day; an entity seen on no cell falls back to its device,
        else it has none. Numbers linked by a flagged device take the device's campaign from the
        link. Derived only from the entity's own state, so replicas that own different
        partitions name the same campaign without talking.
        """
        start, end = L.NUMBER.set_at["cell"] if entity_type == "number" else L.DEVICE.set_at["cell"]
        cells = [int(c) for c in values[start:end] if c]
        if cells:
            return campaign_of(f"cell:{min(cells):08x}:{int(values[L.LAST_MS]) // 86_400_000}")
        device = int(values[L.DEVICE_FP])
        return campaign_of(f"device:{device:016x}") if device else None

    def risk(self, values: list[Any], entity_type: EntityType, entity: str, *, score: int, level: Level,
             reasons: list[Reason], now_ms: int, campaign: str | None = None, number_enc: str | None = None,
             key_id: str | None = None) -> Risk:
        """The Risk record: the entity's own verdict, combined (numbers) with an active link flag."""
        flagged = LEVELS.index(level) >= 1
        expires_s = values[L.FLAG_EXPIRES_S] if flagged and values[L.FLAG_EXPIRES_S] else 0
        first_s = values[L.FLAG_FIRST_S] if flagged else 0
        if entity_type == "number":
            at = L.NUMBER.link_at
            link_score = int(values[at + L.LINK_SCORE])
            if link_score and values[at + L.LINK_EXPIRES_S] > now_ms // 1000:
                reason = link_reason(link_score)
                if link_score > score:
                    score, level, reasons = link_score, self.policy.level_of(link_score), [reason, *reasons]
                else:
                    reasons = [*reasons, reason]
                flagged = True
                expires_s = max(expires_s, int(values[at + L.LINK_EXPIRES_S]))
                link_first = int(values[at + L.LINK_S])
                first_s = min(first_s, link_first) if first_s else link_first
                if campaign is None and LEVELS.index(level) >= 2:
                    # flagged through its device, not on its own: the number's own site names
                    # the campaign (the device's for a SIM in a farm), so it does not vanish
                    campaign = self.campaign(values, "number")
        if not expires_s:
            expires_s = now_ms // 1000 + self.policy.ttl_ms // 1000
        return Risk(
            entity_type=entity_type, entity=entity, score=score, level=level, reasons=reasons[:5],
            updated_at=iso_ms(now_ms), expires_at=iso_s(expires_s), model_version=self.model_version,
            first_flagged_at=iso_s(first_s) if flagged and first_s else None,
            sim_changed_at=_latest(values[L.SIM_CHANGED_S], values[L.ACTIVATED_S]),
            device_changed_at=_latest(values[L.DEVICE_CHANGED_S], values[L.ACTIVATED_S]),
            campaign_id=campaign,
            number_enc=number_enc if entity_type == "number" else None,
            key_id=key_id if entity_type == "number" and number_enc else None,
            **(_line(values) if entity_type == "number" else {}),
        )

    def alert(self, values: list[Any], view: View, *, score: int, level: Level, reasons: list[Reason],
              features: dict[str, float], now_ms: int, campaign: str | None) -> Alert:
        episode = int(values[L.EPISODE_S])
        alert_id = hashlib.sha256(
            f"{view.entity_type}|{view.entity}|{episode}|{self.model_version}".encode()).hexdigest()[:32]
        window = reasons[0].window if reasons else "1h"
        span_ms = {"5m": 300_000, "1h": 3_600_000, "24h": 86_400_000}.get(window, 3_600_000)
        evidence = {k: round(v, 2) for k, v in features.items() if v > 0.0}
        evidence["views_total"] = float(values[L.N_VIEWS])
        return Alert(
            alert_id=alert_id, entity_type=view.entity_type, entity=view.entity, level=level, score=score,
            reasons=reasons[:5], evidence=evidence,
            window=Window(start=iso_ms(now_ms - span_ms), end=iso_ms(now_ms)),
            model_version=self.model_version, raised_at=iso_ms(now_ms), campaign_id=campaign,
            number_enc=view.number_enc if view.entity_type == "number" else None,
            key_id=view.key_id if view.entity_type == "number" and view.number_enc else None,
            ingested_ms=view.ingested_ms,
        )


_LINES = {L.LINE_ACTIVE: "active", L.LINE_CEASED: "ceased", L.LINE_RECYCLED: "recycled"}


def has_dates(values: list[Any]) -> bool:
    """Whether the record holds what CAMARA answers need even unflagged: a SIM/device change, an
    activation, a call forwarding or a lifecycle change."""
    return bool(values[L.SIM_CHANGED_S] or values[L.DEVICE_CHANGED_S] or values[L.ACTIVATED_S]
                or int(values[L.EVICTED]) & L.LINE_STATE_MASK)


def _line(values: list[Any]) -> dict[str, Any]:
    """A number's line on its Risk record: forwardings set, lifecycle, activation, first seen."""
    bits = int(values[L.EVICTED])
    forwarding = [kind for kind, bit in L.FORWARDING_BITS.items() if bits & bit]
    return {
        "forwarding": forwarding or None,
        "line": _LINES.get(bits & L.LINE_MASK),
        "activated_at": iso_s(values[L.ACTIVATED_S]) if values[L.ACTIVATED_S] else None,
        "first_seen_at": iso_s(values[L.FIRST_S]) if values[L.FIRST_S] else None,
    }


def _latest(changed_s: int, activated_s: int) -> str | None:
    """The latest SIM/device change as CAMARA SIM Swap and Device Swap define it: the last swap or,
    when later, the activation (a new subscription is the SIM's first install and the number's
    first device association). Only an operator's activation event sets ``ACTIVATED_S``; the
    first time this system sees a number (``FIRST_S``) is no activation and never counts."""
    latest = max(int(changed_s), int(activated_s))
    return iso_s(latest) if latest else None


def campaign_of(anchor: str) -> str:
    return "cmp-" + hashlib.blake2b(anchor.encode(), digest_size=8).hexdigest()


def device_campaign(device: str) -> str:
    """The campaign of a device seen on no cell (the anchor ``Verdicts.campaign`` falls back to)."""
    return campaign_of(f"device:{fp64(device):016x}")


def link_campaign(link: Link) -> str:
    """The campaign a linked number joins: its device's, as the link names it (older links: by device)."""
    return link.campaign_id or device_campaign(link.device)


def link_reason(points: int, device_reason: str | None = None) -> Reason:
    why = f" for {device_reason}" if device_reason else ""
    return Reason(code="ON_FLAGGED_DEVICE", feature="device_risk", value=float(points), window="event",
                  rarity="linked", text=f"ON_FLAGGED_DEVICE: acted on a device flagged{why} (device risk {points})")
