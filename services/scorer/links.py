"""Device → number links: a flagged device flags the numbers acting on it.

The device's partition sends a ``Link`` per number it sees on the device (``send``); the
number's partition applies it (``apply``, from ``fraudradar.links`` or directly in a backtest).
When a device starts an alert episode it also broadcasts itself, so every partition links the
numbers it has seen on the device and remembers the device for numbers seen on it later.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

import msgspec

from services.common.records import LEVELS, Alert, Level, Link, Reason, Risk, View, Window
from services.scorer import layout as L
from services.scorer.derived import number_features
from services.scorer.output import EVENT_MS_MAX, EngineOutput, iso_ms
from services.scorer.policy import Policy
from services.scorer.record import fp32, fp64
from services.scorer.state import PartitionState, entity_key, entity_text
from services.scorer.verdicts import Verdicts, link_campaign, link_reason

_U64 = struct.Struct("<Q")     # DEVICE_FP read straight from a packed record (L.DEVICE_FP_OFFSET)


@dataclass(eq=False)
class Links:
    """Link flags of one partition: sent for flagged devices, applied to numbers."""

    policy: Policy
    state: PartitionState
    verdicts: Verdicts
    counters: dict[str, int]
    # a device at or above this level rank sends links for the numbers acting on it (0: off)
    link_rank: int = field(init=False)
    _max_points: int = field(init=False)
    _two_way_below: float = field(init=False)
    _returning_below: float = field(init=False)

    def __post_init__(self) -> None:
        links = self.policy.spec.links
        self.link_rank = LEVELS.index(links.min_device_level) if links.enabled else 0
        self._max_points = links.max_points
        self._two_way_below = links.two_way_below
        self._returning_below = links.returning_below

    def send(self, values: list[Any], view: View, reasons: list[Reason], output: EngineOutput) -> None:
        """A flagged device's view names the number acting on it: link that number (once per run of
        views by the same number, and again whenever the device starts a new alert episode)."""
        assert view.number is not None
        at = L.DEVICE.link_at + L.LINK_FP
        number_fp = fp32(view.number)
        if number_fp == values[at] and not output.alerts:
            return
        values[at] = number_fp
        link = Link(
            number=view.number, device=view.entity, device_score=int(values[L.RISK_SCORE]),
            device_episode_s=int(values[L.EPISODE_S]), reason=reasons[0].code if reasons else "DEVICE_FLAGGED",
            occurred_ms=view.occurred_ms, key_id=view.key_id, ingested_ms=view.ingested_ms,
            number_enc=view.number_enc, campaign_id=self.verdicts.campaign(values, view.entity_type))
        if output.alerts:
            # a new episode: every partition links the numbers it has seen on this device (the
            # SIMs that left a farm before it was recognisable) and remembers it for later ones
            output.links = [link, msgspec.structs.replace(link, number="", number_enc=None, broadcast=True)]
        else:
            output.links = [link]

    def apply(self, link: Link) -> EngineOutput:
        """Apply a number's link to a flagged device (or a device's broadcast).

        The link flag lives beside the number's own verdict, never inside it: the number's own
        score, models and alert episodes depend only on its own views, so its own alerts are the
        same whichever order links and views arrive in. A link raises its own alert, once per
        (device, device episode), with an id derived from exactly that — so it is deterministic
        too, and idempotent when a link is redelivered.
        """
        if link.broadcast:
            return self._apply_broadcast(link)
        policy = self.policy
        number = link.number
        output = EngineOutput("number", number, 0)
        if not self.link_rank or number in policy.a2p_registered:
            return output
        points, level = self._points(link)
        if level == "none":
            return output
        t_ms = min(max(link.occurred_ms, 0), EVENT_MS_MAX)
        t_s = t_ms // 1000
        expires = t_s + policy.flag_ttl_ms[level] // 1000
        if expires * 1000 <= self.state.watermark_ms - policy.grace_ms:
            return output                       # a link that would already have expired
        self.counters["links"] += 1
        table = self.state.store.numbers
        layout = table.layout
        key = entity_key(number)
        packed = table.records.get(key)
        values = layout.unpack(packed) if packed is not None else layout.empty()
        if packed is not None and self._legitimate(values):
            self.counters["links_legitimate"] += 1
            return output
        at = layout.link_at
        active = values[at + L.LINK_SCORE] and values[at + L.LINK_EXPIRES_S] > t_s
        before = (int(values[at + L.LINK_SCORE]), int(values[at + L.LINK_EXPIRES_S])) if active else (0, 0)
        values[at + L.LINK_S] = min(int(values[at + L.LINK_S]), t_s) if active else t_s
        values[at + L.LINK_SCORE] = max(before[0], points)
        values[at + L.LINK_EXPIRES_S] = max(before[1], expires)
        output.score = max(int(values[at + L.LINK_SCORE]), int(values[L.RISK_SCORE]))
        episode_fp = _episode_fp(link.device, link.device_episode_s)
        if episode_fp != values[at + L.LINK_FP] and LEVELS.index(level) >= self.verdicts.alert_rank:
            values[at + L.LINK_FP] = episode_fp
            output.alerts = [self._alert(link, points, level, t_ms)]
        after = (int(values[at + L.LINK_SCORE]), int(values[at + L.LINK_EXPIRES_S]))
        # a new Risk when the link flag starts, changes score, or its expiry moves by an hour or more
        if after != before and (not active or after[0] != before[0] or after[1] - before[1] >= 3600):
            own_level = LEVELS[int(values[L.RISK_LEVEL])]
            output.risk = self.verdicts.risk(values, "number", number, score=int(values[L.RISK_SCORE]),
                                             level=own_level, reasons=[], now_ms=t_ms,
                                             campaign=link_campaign(link), number_enc=link.number_enc,
                                             key_id=link.key_id)
        table.records[key] = layout.pack(values)
        table.dirty.add(key)
        return output

    def _legitimate(self, values: list[Any]) -> bool:
        """Does the number have its own legitimacy evidence: recipients who reply or call back
        (``one_way_share_24h`` below ``links.two_way_below``), or recipients it had contacted
        before (``stranger_share_24h`` below ``links.returning_below``)?

        A farm's SIMs text strangers who never answer and whom they never text again; the
        numbers of a business modem or of a family's shared phone are answered by, and come back
        to, the people they know. Such a number keeps its own verdict (its own rules still apply)
        and does not inherit the device's."""
        two_way, returning = self._two_way_below, self._returning_below
        if two_way <= 0.0 and returning <= 0.0:
            return False
        features = number_features(values)
        return (two_way > 0.0 and features["one_way_share_24h"] < two_way) or (
            returning > 0.0 and features["stranger_share_24h"] < returning)

    def _points(self, link: Link) -> tuple[int, Level]:
        """A link flag's score (the device's, capped at ``links.max_points``) and its level."""
        points = min(max(int(link.device_score), 0), self._max_points)
        return points, self.policy.level_of(points)

    def _apply_broadcast(self, link: Link) -> EngineOutput:
        """A device started an alert episode: link every number here whose device it is, and
        remember the device so numbers seen on it later are linked too (``remembered``).

        Either way a number gets the same alert id, whichever of its views and the broadcast
        this partition processes first — so replicas and crash replays agree.
        """
        output = EngineOutput("device", link.device, 0)
        policy = self.policy
        _, level = self._points(link)
        if not self.link_rank or level == "none":
            return output
        t_s = min(max(link.occurred_ms, 0), EVENT_MS_MAX) // 1000
        expires = t_s + policy.flag_ttl_ms[level] // 1000
        table = self.state.store.flagged
        layout = table.layout
        key = entity_key(link.device)
        packed = table.records.get(key)
        values = layout.unpack(packed) if packed is not None else layout.empty()
        device_fp = fp64(link.device)
        if int(values[L.EPISODE_S]) == link.device_episode_s and values[layout.link_at + L.LINK_EXPIRES_S] >= expires:
            return output                                  # a redelivered broadcast
        values[L.LAST_MS] = max(int(values[L.LAST_MS]), t_s * 1000)
        values[L.DEVICE_FP] = device_fp
        values[L.EPISODE_S] = link.device_episode_s
        values[L.RISK_SCORE] = max(0, min(int(link.device_score), 100))
        values[L.CAMPAIGN_BITS] = _campaign_bits(link.campaign_id)
        values[layout.link_at + L.LINK_EXPIRES_S] = max(int(values[layout.link_at + L.LINK_EXPIRES_S]), expires)
        table.records[key] = layout.pack(values)
        table.dirty.add(key)
        self.state.flagged_index[device_fp] = key
        numbers = self.state.store.numbers
        offset = L.DEVICE_FP_OFFSET
        unpack = _U64.unpack_from
        on_device = [k for k, rec in numbers.records.items() if unpack(rec, offset)[0] == device_fp]
        alerts: list[Alert] = []
        risks: list[Risk] = []
        for number_key in on_device:
            out = self.apply(msgspec.structs.replace(link, number=entity_text(number_key), broadcast=False))
            alerts += out.alerts
            if out.risk is not None:
                risks.append(out.risk)
        output.alerts, output.risk_updates = alerts, risks
        return output

    def remembered(self, values: list[Any], view: View, output: EngineOutput) -> None:
        """A number seen on a device this partition remembers as flagged: link it (once per episode)."""
        key = self.state.flagged_index.get(int(values[L.DEVICE_FP]))
        if key is None:
            return
        packed = self.state.store.flagged.records.get(key)
        if packed is None:
            return
        device = self.state.store.flagged.layout.unpack(packed)
        if device[L.FLAGGED.link_at + L.LINK_EXPIRES_S] * 1000 <= view.occurred_ms:
            return
        device_text = entity_text(key)
        episode = int(device[L.EPISODE_S])
        if values[L.NUMBER.link_at + L.LINK_FP] == _episode_fp(device_text, episode):
            return                                         # already linked for this episode
        out = self.apply(Link(
            number=view.entity, device=device_text, device_score=int(device[L.RISK_SCORE]),
            device_episode_s=episode, reason="DEVICE_FLAGGED", occurred_ms=view.occurred_ms, key_id=view.key_id,
            ingested_ms=view.ingested_ms, number_enc=view.number_enc,
            campaign_id=_campaign_from_bits(int(device[L.CAMPAIGN_BITS]))))
        if out.alerts:
            output.alerts = [*output.alerts, *out.alerts]
        if out.risk is not None:
            output.risk_updates = [*output.risk_updates, out.risk]

    def remembered_packed(self, packed: bytes, view: View, output: EngineOutput) -> None:
        """``remembered`` for a number's packed record, unpacked only when its device is flagged here."""
        if _U64.unpack_from(packed, L.DEVICE_FP_OFFSET)[0] in self.state.flagged_index:
            self.remembered(self.state.store.numbers.layout.unpack(packed), view, output)

    def _alert(self, link: Link, points: int, level: Level, t_ms: int) -> Alert:
        alert_id = hashlib.sha256(f"number|{link.number}|link|{link.device}|{link.device_episode_s}|"
                                  f"{self.verdicts.model_version}".encode()).hexdigest()[:32]
        reason = link_reason(points, link.reason)
        return Alert(
            alert_id=alert_id, entity_type="number", entity=link.number, level=level, score=points,
            reasons=[reason], evidence={"device_risk": float(link.device_score)},
            window=Window(start=iso_ms(max(0, link.device_episode_s * 1000)), end=iso_ms(t_ms)),
            model_version=self.verdicts.model_version, raised_at=iso_ms(t_ms), campaign_id=link_campaign(link),
            number_enc=link.number_enc, key_id=link.key_id if link.number_enc else None,
            ingested_ms=link.ingested_ms or None,
        )


def _episode_fp(device: str, episode_s: int) -> int:
    """32-bit fingerprint of a device's alert episode (a number's LINK_FP: linked once per episode)."""
    return int(hashlib.blake2b(f"{device}|{episode_s}".encode(), digest_size=4).hexdigest(), 16) or 1


def _campaign_bits(campaign: str | None) -> int:
    """A campaign id as the signed 64-bit value a remembered flagged device keeps (0: none)."""
    if not campaign or not campaign.startswith("cmp-") or len(campaign) != 20:
        return 0
    return int.from_bytes(bytes.fromhex(campaign[4:]), "big", signed=True)


def _campaign_from_bits(bits: int) -> str | None:
    return "cmp-" + bits.to_bytes(8, "big", signed=True).hex() if bits else None
