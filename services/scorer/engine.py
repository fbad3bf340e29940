"""The scoring engine: the per-view pipeline of one partition, driven by event time.

``ScoringEngine.process(view)`` is the pipeline, shared by the ``score`` service (one per input
partition) and the backtest (one for everything):

1. skip the view if its source offset was already applied to the entity (replay after a crash);
2. update the entity's packed feature state (``features``), order-independent in event time;
3. evaluate the policy rules, and, when the entity's activity moved materially, the
   calibrated detectors (``detectors``); fuse with partner feedback;
4. learn: detectors learn a deterministic sample of the views they did not flag;
5. the verdict (``verdicts``): the Risk record and an Alert; a flagged device links the number
   acting on it (``links``);
6. every ``state.sweep_every`` of event time, the sweep (``sweep``).

The engine keeps nothing of its own: state and models are the ``PartitionState`` it is handed.
Nothing here reads the wall clock. Models are per partition: which process owns a partition
does not change what its models saw.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from services.common.records import EntityType, Reason, View
from services.scorer import catalogue
from services.scorer import features as F
from services.scorer import layout as L

# the detectors' class as checkpoints older than the ``detectors`` module pickled it
from services.scorer.detectors import EntityModels as EntityModels  # noqa: PLC0414
from services.scorer.links import Links
from services.scorer.output import EVENT_MS_MAX, EngineOutput
from services.scorer.policy import Policy
from services.scorer.scoring import (
    at_least,
    burst_reason,
    compile_matcher,
    evaluate_rules,
    fuse,
    model_in_evidence,
    model_points,
    model_rare_reasons,
    model_reason,
)
from services.scorer.state import PartitionState, entity_key
from services.scorer.sweep import Sweeper
from services.scorer.thresholds import PopulationCuts
from services.scorer.verdicts import Verdicts

Contributions = list[tuple[float, Reason]]
A2P_KINDS = frozenset({"alphanumeric", "short_code"})   # how an A2P sender ID reaches the network


class ScoringEngine:
    """The per-view pipeline over one partition's state. Not thread-safe: one thread drives it."""

    def __init__(self, policy: Policy, state: PartitionState, *, verdicts: Verdicts, links: Links, sweeper: Sweeper,
                 counters: dict[str, int]) -> None:
        self.policy = policy
        self.state = state
        self.verdicts = verdicts
        self.links = links
        self.sweeper = sweeper
        self.counters = counters
        tz = ZoneInfo(policy.spec.timezone)
        night_start, night_end = policy.spec.night_hours

        @lru_cache(maxsize=4096)
        def night_hour(hour_bucket: int) -> bool:
            local = datetime.fromtimestamp(hour_bucket * 3600, UTC).astimezone(tz)
            if night_start <= night_end:
                return night_start <= local.hour < night_end
            return local.hour >= night_start or local.hour < night_end

        self._night_hour = night_hour
        self._short_call_s = float(policy.spec.short_call_seconds)
        self._learn_every = policy.models.learn_every
        self._growth = policy.models.rescore_growth
        self._rescore_after_s = policy.rescore_after_ms // 1000
        self._min_activity = at_least(policy.models.min_activity)   # decayed counts: rounding forgiven
        self._medium = policy.levels.medium
        # a model whose raw score passes its budget cut alerts alone, at the alert level
        self._rare_points = float(policy.level_floor[policy.alert_level])
        self._alone = policy.models.alone
        self._modem_tacs = policy.modem_tacs
        # the per-view record update: compiled (_fastcore.c) when built, else features.apply_view
        self._apply = F.COMPILED_APPLY
        self._matchers = {kind: compile_matcher(policy.rules.get(kind, [])) for kind in ("number", "device")}
        # models.evidence: the rules' evidence group a model's capped points count in (None: none)
        self._model_group = policy.models.evidence
        self._rule_groups = {kind: {rule.code: rule.evidence for rule in policy.rules.get(kind, [])}
                             for kind in ("number", "device")}

    def process(self, view: View, offset: int | None = None) -> EngineOutput:
        """Apply one view; ``offset`` (its source offset) makes replays after a restore no-ops."""
        if not 0 <= view.occurred_ms <= EVENT_MS_MAX:
            view = msgspec.structs.replace(view, occurred_ms=min(max(view.occurred_ms, 0), EVENT_MS_MAX))
        entity_type, entity = view.entity_type, view.entity
        is_number = entity_type == "number"
        if is_number and view.number_kind in A2P_KINDS:
            return self._sender_id(view, offset)
        table = self.state.store.numbers if is_number else self.state.store.devices
        key = entity_key(entity)
        packed = table.records.get(key)
        result = self._update(is_number, packed, view, offset)
        if result[0] == 0:
            self.counters["skipped"] += 1
            return EngineOutput(entity_type, entity, result[1], skipped=True)
        self.counters["views"] += 1
        # a number this partition holds no state for (never seen, or forgotten after its idle
        # horizon): fraudradar.first-seen tells the API's call-state check (docs/architecture.md)
        first_seen_ms = view.occurred_ms if is_number and packed is None else 0
        if result[0] == 1:
            # fast path: a quiet, unflagged entity without a recent SIM/device change, not on a
            # modem and not protected can fire no rule and is not scored by the models
            table.records[key] = result[1]
            table.dirty.add(key)
            output = EngineOutput(entity_type, entity, 0)
            output.first_seen_ms = first_seen_ms
            if self.state.flagged_index and is_number:
                self.links.remembered_packed(result[1], view, output)
            self._advance(result[2], output)
            return output
        values, changed, activity, modem, features = result[1], result[2], result[3], result[4], result[5]
        now_ms = int(values[L.LAST_MS])
        features["modem_device"] = 1.0 if modem else 0.0
        models = self.state.models[entity_type]
        # models look at what an entity originates: only its out/change views, only when active
        eligible = activity >= self._min_activity and view.role != "in"
        contributions: Contributions = []
        model_scores: dict[str, float] = {}
        raws: dict[str, float] = {}
        due, tails = self._detect(models, values, features, activity=activity, changed=changed, eligible=eligible,
                                  now_s=now_ms // 1000, contributions=contributions, model_scores=model_scores,
                                  raws=raws)
        self._rules(view, features, tails, contributions)
        if self._model_group is not None and len(contributions) > 1:
            contributions = model_in_evidence(contributions, self._rule_groups[entity_type], self._model_group,
                                              self.policy.models.max_points)
        score = round(self._with_feedback(models, features, contributions))
        if due and score < self._medium and self._sampled(view.view_id):
            self._learn(models, entity_type, features, raws)
        contributions.sort(key=lambda c: -c[0])
        reasons = [reason for _, reason in contributions]
        output = EngineOutput(entity_type, entity, score)
        output.first_seen_ms = first_seen_ms
        if model_scores:
            output.model_scores = model_scores
        self.verdicts.decide(values, view, score, reasons=reasons, features=features, changed=changed,
                             now_ms=now_ms, output=output)
        if (not is_number and self.links.link_rank and view.number is not None
                and values[L.RISK_LEVEL] >= self.links.link_rank):
            self.links.send(values, view, reasons, output)
        table.records[key] = table.layout.pack(values)
        table.dirty.add(key)
        if self.state.flagged_index and is_number:
            self.links.remembered(values, view, output)
        self._advance(now_ms, output)
        return output

    def _sender_id(self, view: View, offset: int | None) -> EngineOutput:
        """An A2P sender ID (alphanumeric or short code): never scored by subscriber rules or
        models — bulk senders text strangers with links by design. Its red flag is spoofing,
        against the sender-ID registry: a look-alike of a protected ID, or a protected ID sent
        from a subscriber SIM (an MO with IMSI or device). Only then does it get a record."""
        senders = self.policy.senders
        settings = self.policy.spec.sender_registry
        entity = view.entity
        contributions: Contributions = []
        if view.role == "out":
            imitated = senders.lookalike.get(entity)
            if imitated is not None:
                contributions.append((settings.lookalike_points, Reason(
                    code="SENDER_ID_LOOKALIKE", feature="sender_id", value=1.0, window="event", rarity="registry",
                    text=f"SENDER_ID_LOOKALIKE: an unregistered sender ID that imitates a registered {imitated} "
                         "sender (homoglyphs, one edit)")))
            if entity in senders.protected and view.subscriber and (view.imsi is not None or view.device is not None):
                contributions.append((settings.from_sim_points, Reason(
                    code="PROTECTED_SENDER_FROM_SIM", feature="sender_id", value=1.0, window="event",
                    rarity="registry", text=f"PROTECTED_SENDER_FROM_SIM: the registered "
                    f"{senders.category.get(entity, 'protected')} sender ID was sent from a subscriber SIM")))
        if not contributions:
            self.counters["a2p_views"] += 1
            return EngineOutput("number", entity, 0)
        table = self.state.store.numbers
        key = entity_key(entity)
        result = self._update(True, table.records.get(key), view, offset)
        if result[0] == 0:
            self.counters["skipped"] += 1
            return EngineOutput("number", entity, result[1], skipped=True)
        self.counters["views"] += 1
        values = table.layout.unpack(result[1]) if result[0] == 1 else result[1]
        now_ms = int(values[L.LAST_MS])
        contributions.sort(key=lambda c: -c[0])
        output = EngineOutput("number", entity, round(fuse(p for p, _ in contributions)))
        self.verdicts.decide(values, view, output.score, reasons=[r for _, r in contributions],
                             features=F.number_features(values), changed=False, now_ms=now_ms, output=output)
        table.records[key] = table.layout.pack(values)
        table.dirty.add(key)
        self._advance(now_ms, output)
        return output

    def _update(self, is_number: bool, packed: bytes | None, view: View, offset: int | None) -> Any:
        """The record update (``features.apply_view``, compiled when built): its result tuple."""
        night = self._night_hour(view.occurred_ms // 3_600_000) if is_number else False
        protected = is_number and view.entity in self.policy.do_not_originate
        args = (is_number, packed, view, offset, night, self._short_call_s, self.policy.a2p_registered,
                self._min_activity, self._modem_tacs, protected, self.policy.code_senders)
        result = self._apply(*args) if self._apply is not None else None
        if result is None:           # not compiled, or a view the compiled update leaves to Python
            result = F.apply_view(*args)
        return result

    def _detect(self, models: EntityModels, values: list[Any], features: dict[str, float], *, activity: float,
                changed: bool, eligible: bool, now_s: int, contributions: Contributions,
                model_scores: dict[str, float], raws: dict[str, float]) -> tuple[bool, dict[str, float] | None]:
        """The detectors' verdict when due (activity grew, time passed, a change), else the latest
        one kept in the record; returns whether they scored and ECOD's feature tails if computed."""
        if not eligible:
            values[L.MODEL_POINTS] = 0.0
            return False, None
        due = (activity >= values[L.SCORED_ACTIVITY] * self._growth
               or now_s - values[L.SCORED_S] >= self._rescore_after_s or changed)
        if not due:
            if values[L.MODEL_POINTS] > 0.0:
                contributions.append((values[L.MODEL_POINTS], Reason(
                    code="MODEL_ANOMALY", feature="model", value=round(values[L.MODEL_POINTS], 1),
                    window="1h", rarity="model", text="MODEL_ANOMALY: unusual traffic (latest model verdict)")))
            return False, None
        self.counters["scored"] += 1
        features = catalogue.for_models(features)      # the rules' own features stay out of the models
        ecod = models.detectors.get("ecod")
        tails: dict[str, float] | None = None
        best = 0.0
        best_reason: Reason | None = None
        for name, detector in models.detectors.items():
            if not detector.is_warm:
                continue
            raw = detector.raw_one(features)
            raws[name] = raw
            tail = detector.calibrator.tail(raw)
            model_scores[name] = 1.0 - tail
            points = model_points(self.policy, tail)
            if points > best:
                best = points
                if name == "burst":
                    best_reason = burst_reason(detector.detector, tail, features)  # type: ignore[arg-type]
                else:
                    if tails is None and ecod is not None and ecod.is_warm:
                        tails = ecod.detector.tails_one(features)  # type: ignore[attr-defined]
                    best_reason = model_reason(name, tail, tails or {}, features)
        # a model past its budget cut alerts alone; its reasons replace the capped model points
        rare = self._rare(models, features, raws, model_scores)
        if rare:
            best, best_reason = rare[0][0], None
            contributions.extend(rare)
        values[L.MODEL_POINTS] = best
        values[L.SCORED_ACTIVITY] = max(activity, 1.0)
        values[L.SCORED_S] = now_s
        if best_reason is not None:
            contributions.append((best, best_reason))
        return True, tails

    def _rare(self, models: EntityModels, features: dict[str, float], raws: dict[str, float],
              model_scores: dict[str, float]) -> Contributions:
        """A model-only alert: the first detector (policy order) whose raw score reaches its cut
        derived from the budget (``thresholds.PopulationCuts``): ``MODEL_RARE`` at the alert
        level, its first reason naming the feature that contributed most, then (0 points, after
        the other reasons) the next two. Nothing before the cuts are warm and resolvable."""
        cuts = models.cuts
        if cuts is None or not cuts.model_cuts or not self._alone:
            return []
        for name, cut in cuts.model_cuts.items():
            raw = raws.get(name)
            if raw is None or not raw >= cut:
                continue
            detector = models.detectors[name].detector
            explain = getattr(detector, "contributions_one", None)
            named: dict[str, float] = explain(features) if explain is not None else {}
            reasons = model_rare_reasons(name, raw, cut, 1.0 - model_scores.get(name, 0.0), contributions=named,
                                         features=features)
            self.counters["model_rare"] += 1
            return [(self._rare_points if i == 0 else 0.0, reason) for i, reason in enumerate(reasons)]
        return []

    def _rules(self, view: View, features: dict[str, float], tails: dict[str, float] | None,
               contributions: Contributions) -> None:
        """The policy's rules (rarity from the population tails when ECOD is warm) and do-not-originate."""
        entity_type = view.entity_type
        matched = self._matchers[entity_type](features)
        cuts = self.state.models[entity_type].cuts
        if matched and cuts is not None:
            # the policy's thresholds are each rule's minimum evidence; the population may raise a
            # rule's graded one (thresholds.PopulationCuts)
            matched = [i for i in matched if _holds_derived(cuts, i, features)]
        if matched:
            ecod = self.state.models[entity_type].detectors.get("ecod")
            if tails is None and ecod is not None and ecod.is_warm:
                tails = ecod.detector.tails_one(features)  # type: ignore[attr-defined]
            contributions.extend(evaluate_rules(self.policy.rules.get(entity_type, []), features, tails, matched))
        if entity_type == "number" and view.role == "out" and view.entity in self.policy.do_not_originate:
            kind = "call" if view.type == "call" else "SMS"
            contributions.append((self.policy.spec.do_not_originate_points, Reason(
                code="SPOOFED_PROTECTED_NUMBER", feature=f"{view.type}_out", value=1.0, window="event",
                rarity="rule", text=f"SPOOFED_PROTECTED_NUMBER: a {kind} presented a do-not-originate number")))

    def _with_feedback(self, models: EntityModels, features: dict[str, float], contributions: Contributions) -> float:
        """The fused points, raised or damped by the partner-feedback learner when it is ready."""
        points = fuse(p for p, _ in contributions)
        if contributions and models.feedback.ready:
            proba = models.feedback.proba_one(catalogue.for_models(features))
            if proba is not None:
                cfg = self.policy.models
                if proba > 0.5:
                    extra = (proba - 0.5) * 2.0 * cfg.feedback_max_points
                    points = fuse((points, extra))
                    contributions.append((extra, Reason(
                        code="FEEDBACK_CONFIRMED_PATTERN", feature="feedback", value=round(proba, 3),
                        window="lifetime", rarity="supervised",
                        text=f"FEEDBACK_CONFIRMED_PATTERN: resembles partner-confirmed fraud (p={proba:.2f})")))
                else:
                    points *= cfg.feedback_damping + (1.0 - cfg.feedback_damping) * proba / 0.5
        return points

    def _learn(self, models: EntityModels, entity_type: EntityType, features: dict[str, float],
               raws: dict[str, float]) -> None:
        """Learning: a deterministic sample of the points the models scored and did not flag (only
        scored points: the calibrator then learns exactly the distribution it is asked about,
        and learning never costs an extra model evaluation); journalled for a restore."""
        self.counters["learned"] += 1
        models.learn_one(features, raws)
        self.state.journal.learned(entity_type, features, raws)

    def _advance(self, now_ms: int, output: EngineOutput) -> None:
        """Move the watermark to ``now_ms``; sweep when it passes the next sweep time."""
        state = self.state
        if now_ms > state.watermark_ms:
            state.watermark_ms = now_ms
            if now_ms >= state.next_sweep_ms:
                self.sweeper.sweep(output)

    def _sampled(self, view_id: str) -> bool:
        if self._learn_every <= 1:
            return True
        return int(view_id[-6:], 16) % self._learn_every == 0 if _is_hex(view_id[-6:]) else True


def _holds_derived(cuts: PopulationCuts, index: int, features: dict[str, float]) -> bool:
    """Whether rule ``index`` (its policy conditions hold) also reaches its derived threshold."""
    scale = cuts.scale(index)
    if scale <= 1.0:
        return True
    graded = cuts.graded(index)
    return graded is None or features.get(graded[0], 0.0) >= at_least(graded[1] * scale)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


__all__ = ["EngineOutput", "EntityModels", "ScoringEngine"]
