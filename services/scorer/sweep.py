"""The sweep: forget idle entities (event-time TTL) and expire flags, as event time advances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.common.records import LEVELS, EntityType, Risk
from services.scorer import features as F
from services.scorer import layout as L
from services.scorer.output import EngineOutput
from services.scorer.policy import Policy
from services.scorer.state import EntityTable, PartitionState, entity_text
from services.scorer.verdicts import Verdicts, has_dates


@dataclass(eq=False)
class Sweeper:
    """Runs every ``state.sweep_every`` of event time over one partition's tables.

    Idle entities (no view for ``state.ttl`` of event time) are forgotten, flags and link
    flags past their expiry are cleared; the Risk updates and tombstones go on the output.
    """

    policy: Policy
    state: PartitionState
    verdicts: Verdicts
    counters: dict[str, int]
    # the table scan: compiled (_fastcore.c) when built, else features.scan_records
    scan: Callable[..., tuple[list[bytes], list[bytes]] | None] | None = field(
        default_factory=lambda: F.COMPILED_SCAN)

    def sweep(self, output: EngineOutput) -> None:
        """Forget idle entities and expire flags up to the watermark less the grace period."""
        policy = self.policy
        state = self.state
        horizon = state.watermark_ms - policy.grace_ms
        state.next_sweep_ms = state.watermark_ms + policy.sweep_every_ms
        tombstones: list[tuple[EntityType, str]] = []
        risk_updates: list[Risk] = []
        for table in (state.store.numbers, state.store.devices):
            self._sweep_table(table, horizon, tombstones, risk_updates)
        flagged = state.store.flagged
        horizon_s = horizon // 1000
        for key in [k for k, v in flagged.records.items() if flagged.layout.link_tail(v)[L.LINK_EXPIRES_S] < horizon_s]:
            del flagged.records[key]
            flagged.dirty.add(key)
        if len(state.flagged_index) != len(flagged.records):
            state.flagged_index = {fp: key for fp, key in state.flagged_index.items() if key in flagged.records}
        if tombstones:
            output.tombstones = tombstones
        if risk_updates:
            output.risk_updates = risk_updates

    def _sweep_table(self, table: EntityTable, horizon_ms: int, tombstones: list[tuple[EntityType, str]],
                     risk_updates: list[Risk]) -> None:
        layout = table.layout
        records = table.records
        at = layout.link_at
        horizon_s = horizon_ms // 1000
        is_number = table.entity_type == "number"
        kind: EntityType = "number" if is_number else "device"
        # one pass finds both: idle entities and (among the others) flags or link flags expired
        args = (is_number, records, horizon_ms - self.policy.ttl_ms, horizon_s)
        scan = self.scan(*args) if self.scan is not None else None
        idle, expired = scan if scan is not None else F.scan_records(*args)
        for key in idle:
            values = layout.unpack(records[key])
            link_expires = int(values[at + L.LINK_EXPIRES_S])
            if link_expires > horizon_s:
                # the entity's own state is forgotten; its link flag lives on until it expires
                kept = layout.empty()
                kept[at:] = values[at:]
                if kept != values:
                    self.counters["forgotten"] += 1
                    records[key] = layout.pack(kept)
                    table.dirty.add(key)
                continue
            del records[key]
            table.dirty.add(key)
            self.counters["forgotten"] += 1
            if values[L.RISK_LEVEL] or has_dates(values) or link_expires:
                tombstones.append((kind, entity_text(key)))
        # (an idle entity is deleted, or kept with only a link flag that has not expired: the
        # scan's exclusion of idle keys from ``expired`` is what a second pass would find)
        for key in expired:
            values = layout.unpack(records[key])
            if 0 < values[L.FLAG_EXPIRES_S] < horizon_s:
                values[L.FLAG_FIRST_S] = values[L.FLAG_EXPIRES_S] = 0
                values[L.RISK_SCORE] = values[L.RISK_LEVEL] = 0
                values[L.MODEL_POINTS] = 0.0
            if 0 < values[at + L.LINK_EXPIRES_S] < horizon_s:
                # LINK_FP stays: a late redelivery of the same link must not alert again
                values[at + L.LINK_S] = values[at + L.LINK_EXPIRES_S] = values[at + L.LINK_SCORE] = 0
            records[key] = layout.pack(values)
            table.dirty.add(key)
            entity = entity_text(key)
            flagged = values[L.RISK_LEVEL] or values[at + L.LINK_SCORE]
            if flagged or has_dates(values):
                # still flagged by the other verdict, or CAMARA answers need the dates and the line
                level = LEVELS[int(values[L.RISK_LEVEL])]
                risk_updates.append(self.verdicts.risk(values, kind, entity, score=int(values[L.RISK_SCORE]),
                                                       level=level, reasons=[], now_ms=horizon_ms))
            else:
                tombstones.append((kind, entity))
