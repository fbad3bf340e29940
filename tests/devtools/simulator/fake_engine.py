"""A tiny rule-based engine for backtest tests only (the real scorer lives in services/scorer).

It checks the backtest plumbing and metrics, not detection quality: it counts per entity in
event time and raises a ``high`` alert once a simple rule fires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.common.pseudonym import Pseudonymizer
from services.common.records import Alert, Reason, View, Window
from services.devtools.simulator import catalog


@dataclass
class Output:
    entity_type: str
    entity: str
    score: int
    alerts: list[Alert] = field(default_factory=list)
    risk: None = None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


class RuleEngine:
    model_version = "test-rules-1"

    def __init__(self, pseudonymizer: Pseudonymizer) -> None:
        self.dno = {pseudonymizer("msisdn", n) for n in catalog.DO_NOT_ORIGINATE}
        self.a2p = {pseudonymizer("msisdn", s) for s in catalog.A2P_SENDERS}
        self.peers: dict[str, set[str]] = {}
        self.url_out: dict[str, int] = {}
        self.imsis: dict[str, set[str]] = {}
        self.missed_out: dict[str, int] = {}
        self.alerted: set[tuple[str, str]] = set()

    def process(self, view: View) -> Output:
        score = 0
        if view.entity_type == "device":
            seen = self.imsis.setdefault(view.entity, set())
            if view.imsi:
                seen.add(view.imsi)
            score = min(100, 15 * len(seen))
        elif view.role == "out" and view.entity not in self.a2p:
            peers = self.peers.setdefault(view.entity, set())
            if view.peer:
                peers.add(view.peer)
            if view.sms is not None and view.sms.has_url:
                self.url_out[view.entity] = self.url_out.get(view.entity, 0) + 1
            if view.call is not None and not view.call.answered:
                self.missed_out[view.entity] = self.missed_out.get(view.entity, 0) + 1
            score = min(100, 2 * self.url_out.get(view.entity, 0) + self.missed_out.get(view.entity, 0) // 2)
            if view.entity in self.dno and view.type == "call":
                score = 95
        out = Output(view.entity_type, view.entity, score)
        key = (view.entity_type, view.entity)
        if score >= 70 and key not in self.alerted:
            self.alerted.add(key)
            out.alerts.append(Alert(
                alert_id=f"{view.entity_type}:{view.entity}", entity_type=view.entity_type, entity=view.entity,
                level="high", score=score, reasons=[Reason("TEST_RULE", "score", score, "lifetime", "rule", "test")],
                evidence={"score": float(score)}, window=Window(_iso(view.occurred_ms), _iso(view.occurred_ms)),
                model_version=self.model_version, raised_at=_iso(view.occurred_ms)))
        return out
