"""The scoring engine: one partition's state, detectors, risk and alerts, driven by event time.

``ScoringEngine.process(view)`` is the whole per-view pipeline, shared by the ``score``
service (one engine per input partition) and the backtest (one engine for everything):

1. skip the view if its source offset was already applied to the entity (replay after a crash);
2. update the entity's packed feature state (``features``), order-independent in event time;
3. evaluate the policy rules, and, when the entity's activity moved materially, the
   calibrated detectors (ECOD and the HST baseline); fuse with partner feedback;
4. learn: detectors learn a deterministic sample of the views they did not flag;
5. decide the Risk record (decay, expiry, level changes, SIM/device changes) and an Alert when
   the entity crosses into the alert level outside a cooldown episode;
6. every ``state.sweep_every`` of event time, forget idle entities and expire flags.

Nothing here reads the wall clock; ids are deterministic (entity, episode start, model version),
so a replay or another replica produces the same ``alert_id``. Models are per engine, i.e. per
partition: which process owns a partition does not change what its models saw.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from models import CalibratedDetector, FeedbackLearner, PoissonBurst, ScaledHalfSpaceTrees, StreamingECOD
from models.burst import BurstAwareHST, Channel
from services.common.pseudonym import Pseudonymizer
from services.common.records import (
    LEVELS,
    Alert,
    EntityType,
    Feedback,
    Level,
    Link,
    Reason,
    Risk,
    View,
    Window,
)
from services.scorer import features as F
from services.scorer.changelog import ChangelogReader, ChangelogWriter
from services.scorer.exceptions import CheckpointError
from services.scorer.modellog import ModelJournal, decode_batches, entries, is_journal_key, sign, verified
from services.scorer.policy import Policy
from services.scorer.scoring import (
    at_least,
    burst_reason,
    compile_matcher,
    evaluate_rules,
    fuse,
    model_points,
    model_reason,
)
from services.scorer.store import (
    COMMIT_KEY,
    COMMIT_MARKER,
    MODELS_KEY,
    EntityTable,
    StateStore,
    entity_key,
    entity_text,
)

CHECKPOINT_FORMAT = 1
# Entity records hold event seconds as uint32 (1970-01-01 .. 2106-02-07). Valid views outside
# that span (ingest forwards far-past events, flagged late) are clamped into it, not a crash.
_EVENT_MS_MAX = (2**32 - 1) * 1000
_U64 = struct.Struct("<Q")     # DEVICE_FP read straight from a packed record (F.DEVICE_FP_OFFSET)
DETECTOR_VERSIONS = {"burst": "burst.1", "burst_hst": "bhst.1", "ecod": "ecod.1", "hst": "hst.2"}


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_s(seconds: float) -> str:
    return iso_ms(int(seconds) * 1000)


class EngineOutput:
    """What one view produced. ``risk``/``alerts`` for the view's entity; sweeps add the rest.

    Allocated once per view, so the containers default to shared empty tuples and the engine
    replaces them with lists only when it has something to put in them.
    """

    __slots__ = ("alerts", "entity", "entity_type", "links", "model_scores", "risk", "risk_updates", "score",
                 "skipped", "tombstones")

    def __init__(self, entity_type: EntityType, entity: str, score: int, *, skipped: bool = False) -> None:
        self.entity_type = entity_type
        self.entity = entity
        self.score = score
        self.risk: Risk | None = None
        self.alerts: Sequence[Alert] = ()
        # flags that expired or entities forgotten during a sweep this view triggered
        self.tombstones: Sequence[tuple[EntityType, str]] = ()
        self.risk_updates: Sequence[Risk] = ()
        # numbers seen acting on this (flagged) device: for fraudradar.links → ``apply_link``
        self.links: Sequence[Link] = ()
        self.skipped = skipped               # already applied (replay): nothing to emit
        self.model_scores: dict[str, float] = _NO_SCORES   # calibrated percentile per detector (read-only)

    @property
    def emits(self) -> bool:
        """Anything for the service to send or observe."""
        return bool(self.risk is not None or self.alerts or self.model_scores or self.tombstones
                    or self.risk_updates or self.links)


_NO_SCORES: dict[str, float] = {}

# the rate channels the burst-aware detector watches: (name, 5m, 1h, 24h feature)
BURST_CHANNELS: dict[EntityType, list[Channel]] = {
    "number": [("sms_out", "sms_out_5m", "sms_out_1h", "sms_out_24h"),
               ("call_out", "call_out_5m", "call_out_1h", "call_out_24h"),
               ("new_recipients", "new_recipients_5m", "new_recipients_1h", "new_recipients_24h"),
               ("url_sms", "url_sms_5m", "url_sms_1h", "url_sms_24h"),
               ("unanswered", "unanswered_5m", "unanswered_1h", "unanswered_24h"),
               ("a2p_in", "a2p_in_5m", "a2p_in_1h", "a2p_in_24h")],
    "device": [("out", "out_5m", "out_1h", "out_24h"),
               ("new_imsis", "new_imsis_5m", "new_imsis_1h", "new_imsis_24h"),
               ("new_numbers", "new_numbers_5m", "new_numbers_1h", "new_numbers_24h"),
               ("new_recipients", "new_recipients_5m", "new_recipients_1h", "new_recipients_24h"),
               ("url_sms", "url_sms_5m", "url_sms_1h", "url_sms_24h"),
               ("calls_out", "calls_out_5m", "calls_out_1h", "calls_out_24h"),
               ("a2p_in", "a2p_in_5m", "a2p_in_1h", "a2p_in_24h")],
}


@dataclass
class ModelRestore:
    """What ``restore_models`` found: the checkpoint's fate and the journal replayed after it."""

    checkpoint: str = "none"     # none | restored | other_version | rejected
    batches: int = 0
    entries: int = 0
    error: str | None = None

    @property
    def outcome(self) -> str:
        """One word for metrics: the checkpoint's fate, or ``journal_error`` when the checkpoint
        was fine but a journal batch after it could not be used."""
        if self.error is not None and self.checkpoint in ("restored", "none"):
            return "journal_error"
        return self.checkpoint


class EntityModels:
    """The detectors of one entity type in one partition, and the feedback learner."""

    def __init__(self, entity_type: EntityType, detectors: Sequence[str], warmup: int, seed: int) -> None:
        self.detectors: dict[str, CalibratedDetector] = {}
        for name in detectors:
            if name == "burst":
                self.detectors[name] = CalibratedDetector(PoissonBurst(BURST_CHANNELS[entity_type], seed=seed),
                                                          warmup=warmup)
            elif name == "burst_hst":
                self.detectors[name] = CalibratedDetector(
                    BurstAwareHST(BURST_CHANNELS[entity_type], n_trees=10, height=8, window_size=1000, seed=seed),
                    warmup=warmup)
            elif name == "ecod":
                self.detectors[name] = CalibratedDetector(StreamingECOD(seed=seed), warmup=warmup)
            elif name == "hst":
                self.detectors[name] = CalibratedDetector(
                    ScaledHalfSpaceTrees(n_trees=10, height=8, window_size=1000, seed=seed), warmup=warmup)
        self.feedback = FeedbackLearner(min_each=5, seed=seed)


class ScoringEngine:
    """Per-partition scorer. Not thread-safe: one engine is driven by one thread."""

    def __init__(self, policy: Policy, pseudonymizer: Pseudonymizer, seed: int = 0, partition: int = 0,
                 journal: bool = False) -> None:
        self.policy = policy
        self.seed = seed
        self.partition = partition
        detectors = list(policy.models.detectors)
        self.model_version = policy.version + "".join("+" + DETECTOR_VERSIONS[d] for d in detectors)
        self.store = StateStore()
        self.models: dict[EntityType, EntityModels] = {
            "number": EntityModels("number", detectors, policy.models.warmup, seed),
            "device": EntityModels("device", detectors, policy.models.warmup, seed + 1),
        }
        self.watermark_ms = 0
        self.changelog_writer = ChangelogWriter()
        self._reader: ChangelogReader | None = None
        # what the models learned since the last changelog write: kept only when someone writes
        # it (the service); a backtest or an analysis engine would only accumulate it
        self.journal = ModelJournal(enabled=journal)
        self._restored_models: bytes | None = None
        self._restored_journal: dict[bytes, bytes] = {}
        # restore: records read since the last commit marker; whether any marker was read
        self._restore_pending: list[tuple[bytes, bytes | None]] = []
        self._restore_marked = False
        self._tail_journal_next = 0       # journal sequence after a discarded tail's batches
        self._undo: list[tuple[bytes, bytes | None]] = []   # corrections the next commit writes first
        self.discarded_records = 0        # records of an unfinished commit the last restore undid
        self.next_sweep_ms = 0
        self.feedback_offset = 0          # next feedback-topic offset this engine has not applied
        self.feedback_by_partner: dict[str, int] = {}  # labels learned per partner (since start)
        self.next_offsets: dict[str, int] = {}   # source topic -> next offset (service bookkeeping)
        self.changelog_end: int | None = None    # end of its scorer-state partition after its last write (service)
        self.counters: dict[str, int] = {"views": 0, "skipped": 0, "scored": 0, "learned": 0,
                                         "feedback": 0, "feedback_unmatched": 0, "forgotten": 0, "links": 0}
        # checkpoints are signed with a key derived from the pseudonym key: a forged changelog
        # record must not be able to make the scorer unpickle arbitrary objects
        self._signing_key = bytes.fromhex(pseudonymizer("cell", "fraudradar:checkpoint-signing"))
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
        self._alert_rank = LEVELS.index(policy.alert_level)
        self._learn_every = policy.models.learn_every
        self._growth = policy.models.rescore_growth
        self._rescore_after_s = policy.rescore_after_ms // 1000
        self._min_activity = at_least(policy.models.min_activity)   # decayed counts: rounding forgiven
        self._medium = policy.levels.medium
        self._modem_tacs = policy.modem_tacs
        # the per-view record update: compiled (_fastcore.c) when built, else features.apply_view
        self._apply = F.COMPILED_APPLY
        self._scan = F.COMPILED_SCAN     # the sweep's scan: compiled, else features.scan_records
        self._matchers = {kind: compile_matcher(policy.rules.get(kind, [])) for kind in ("number", "device")}
        links = policy.spec.links
        # a device at or above this level rank sends links for the numbers acting on it (0: off)
        self._link_rank = LEVELS.index(links.min_device_level) if links.enabled else 0
        self._link_max_points = links.max_points
        self._flagged_index: dict[int, bytes] = {}   # device fingerprint -> key in store.flagged

    @classmethod
    def default(cls, pseudonymizer: Pseudonymizer, policy_path: Path | None = None, seed: int = 0,
                partition: int = 0, journal: bool = False) -> ScoringEngine:
        """The engine with the packaged (or given) policy file."""
        return cls(Policy.load(pseudonymizer, policy_path), pseudonymizer, seed=seed, partition=partition,
                   journal=journal)

    # ------------------------------------------------------------------------------------------
    def process(self, view: View, offset: int | None = None) -> EngineOutput:
        """Apply one view; ``offset`` (its source offset) makes replays after a restore no-ops."""
        if not 0 <= view.occurred_ms <= _EVENT_MS_MAX:
            view = msgspec.structs.replace(view, occurred_ms=min(max(view.occurred_ms, 0), _EVENT_MS_MAX))
        entity_type = view.entity_type
        entity = view.entity
        policy = self.policy
        if entity_type == "number" and entity in policy.a2p_allow:
            return EngineOutput(entity_type, entity, 0)
        is_number = entity_type == "number"
        table = self.store.numbers if is_number else self.store.devices
        layout = table.layout
        key = entity_key(entity)
        night = self._night_hour(view.occurred_ms // 3_600_000) if is_number else False
        protected = is_number and entity in policy.do_not_originate
        args = (is_number, table.records.get(key), view, offset, night, self._short_call_s, policy.a2p_allow,
                self._min_activity, self._modem_tacs, protected)
        result = self._apply(*args) if self._apply is not None else None
        if result is None:           # not compiled, or a view the compiled update leaves to Python
            result = F.apply_view(*args)
        if result[0] == 0:
            self.counters["skipped"] += 1
            return EngineOutput(entity_type, entity, result[1], skipped=True)
        self.counters["views"] += 1
        if result[0] == 1:
            # fast path: a quiet, unflagged entity without a recent SIM/device change, not on a
            # modem and not protected can fire no rule and is not scored by the models
            packed = result[1]
            table.records[key] = packed
            table.dirty.add(key)
            output = EngineOutput(entity_type, entity, 0)
            if self._flagged_index and is_number and _U64.unpack_from(packed, F.DEVICE_FP_OFFSET)[0] in \
                    self._flagged_index:
                self._link_remembered(layout.unpack(packed), view, output)
            now_ms = result[2]
            if now_ms > self.watermark_ms:
                self.watermark_ms = now_ms
                if now_ms >= self.next_sweep_ms:
                    self._sweep(output)
            return output
        values, changed, activity, modem, features = result[1], result[2], result[3], result[4], result[5]
        now_ms = int(values[F.LAST_MS])
        now_s = now_ms // 1000
        features["modem_device"] = 1.0 if modem else 0.0

        # -- detectors ----------------------------------------------------------------------
        models = self.models[entity_type]
        contributions: list[tuple[float, Reason]] = []
        feature_tails: dict[str, float] | None = None
        model_scores: dict[str, float] = {}
        ecod = models.detectors.get("ecod")
        # models look at what an entity originates: only its out/change views, only when active
        eligible = activity >= self._min_activity and view.role != "in"
        raws: dict[str, float] = {}
        due = False
        if eligible:
            due = (activity >= values[F.SCORED_ACTIVITY] * self._growth
                   or now_s - values[F.SCORED_S] >= self._rescore_after_s or changed)
            if due:
                self.counters["scored"] += 1
                best = 0.0
                best_reason: Reason | None = None
                for name, detector in models.detectors.items():
                    if not detector.is_warm:
                        continue
                    raw = detector.raw_one(features)
                    raws[name] = raw
                    tail = detector.calibrator.tail(raw)
                    model_scores[name] = 1.0 - tail
                    points = model_points(policy, tail)
                    if points > best:
                        best = points
                        if name == "burst":
                            best_reason = burst_reason(detector.detector, tail, features)  # type: ignore[arg-type]
                        else:
                            if feature_tails is None and ecod is not None and ecod.is_warm:
                                feature_tails = ecod.detector.tails_one(features)  # type: ignore[attr-defined]
                            best_reason = model_reason(name, tail, feature_tails or {}, features)
                values[F.MODEL_POINTS] = best
                values[F.SCORED_ACTIVITY] = max(activity, 1.0)
                values[F.SCORED_S] = now_s
                if best_reason is not None:
                    contributions.append((best, best_reason))
            elif values[F.MODEL_POINTS] > 0.0:
                contributions.append((values[F.MODEL_POINTS], Reason(
                    code="MODEL_ANOMALY", feature="model", value=round(values[F.MODEL_POINTS], 1),
                    window="1h", rarity="model", text="MODEL_ANOMALY: unusual traffic (latest model verdict)")))
        else:
            values[F.MODEL_POINTS] = 0.0

        # -- rules (rarity from the population tails when ECOD is warm) ------------------------
        matched = self._matchers[entity_type](features)
        if matched:
            rules = policy.rules.get(entity_type, [])
            if feature_tails is None and ecod is not None and ecod.is_warm:
                feature_tails = ecod.detector.tails_one(features)  # type: ignore[attr-defined]
            contributions.extend(evaluate_rules(rules, features, feature_tails, matched))
        if entity_type == "number" and view.role == "out" and entity in policy.do_not_originate:
            kind = "call" if view.type == "call" else "SMS"
            contributions.append((policy.spec.do_not_originate_points, Reason(
                code="SPOOFED_PROTECTED_NUMBER", feature=f"{view.type}_out", value=1.0, window="event",
                rarity="rule", text=f"SPOOFED_PROTECTED_NUMBER: a {kind} presented a do-not-originate number")))

        # -- feedback -----------------------------------------------------------------------
        points = fuse(p for p, _ in contributions)
        if contributions and models.feedback.ready:
            proba = models.feedback.proba_one(features)
            if proba is not None:
                cfg = policy.models
                if proba > 0.5:
                    extra = (proba - 0.5) * 2.0 * cfg.feedback_max_points
                    points = fuse((points, extra))
                    contributions.append((extra, Reason(
                        code="FEEDBACK_CONFIRMED_PATTERN", feature="feedback", value=round(proba, 3),
                        window="lifetime", rarity="supervised",
                        text=f"FEEDBACK_CONFIRMED_PATTERN: resembles partner-confirmed fraud (p={proba:.2f})")))
                else:
                    points *= cfg.feedback_damping + (1.0 - cfg.feedback_damping) * proba / 0.5
        score = round(points)

        # -- learning: a deterministic sample of the points the models scored and did not flag --
        # (only scored points: the calibrator then learns exactly the distribution it is asked
        # about, and learning never costs an extra model evaluation)
        if due and score < self._medium and self._sampled(view.view_id):
            self.counters["learned"] += 1
            for name, detector in models.detectors.items():
                detector.learn_one(features, raws.get(name))
            self.journal.learned(entity_type, features, raws)

        # -- risk and alerts ----------------------------------------------------------------
        contributions.sort(key=lambda c: -c[0])
        reasons = [reason for _, reason in contributions]
        output = EngineOutput(entity_type, entity, score)
        if model_scores:
            output.model_scores = model_scores
        self._decide(values, view, score, reasons=reasons, features=features, changed=changed,
                     now_ms=now_ms, output=output)
        if (entity_type == "device" and self._link_rank and view.number is not None
                and values[F.RISK_LEVEL] >= self._link_rank):
            self._send_link(values, view, reasons, output)
        table.records[key] = layout.pack(values)
        table.dirty.add(key)
        if self._flagged_index and entity_type == "number":
            self._link_remembered(values, view, output)
        if now_ms > self.watermark_ms:
            self.watermark_ms = now_ms
            if now_ms >= self.next_sweep_ms:
                self._sweep(output)
        return output

    def _sampled(self, view_id: str) -> bool:
        if self._learn_every <= 1:
            return True
        return int(view_id[-6:], 16) % self._learn_every == 0 if _is_hex(view_id[-6:]) else True

    # ------------------------------------------------------------------------------------------
    def _decide(self, values: list[Any], view: View, score: int, *, reasons: list[Reason],
                features: dict[str, float], changed: bool, now_ms: int, output: EngineOutput) -> None:
        policy = self.policy
        now_s = now_ms // 1000
        prev_score = int(values[F.RISK_SCORE])
        prev_rank = int(values[F.RISK_LEVEL])
        # flags decay: the last emitted score halves every flags.ttl[low]
        if prev_score and values[F.RISK_AT_S]:
            elapsed = max(0, now_s - int(values[F.RISK_AT_S]))
            held = prev_score * 0.5 ** (elapsed * 1000 / policy.flag_ttl_ms["low"])
        else:
            held = 0.0
        reported = max(score, round(held))
        level: Level = policy.level_of(reported)
        rank = LEVELS.index(level)
        if rank >= 1:
            if not values[F.FLAG_FIRST_S]:
                values[F.FLAG_FIRST_S] = now_s
            if score >= policy.levels.low:
                expiry = now_s + policy.flag_ttl_ms[policy.level_of(score)] // 1000
                values[F.FLAG_EXPIRES_S] = max(values[F.FLAG_EXPIRES_S], expiry)
        emit = changed or rank != prev_rank or (
            rank >= 1 and abs(reported - prev_score) >= policy.spec.flags.min_score_change)
        campaign = self._campaign(values, view.entity_type) if rank >= 2 else None
        if emit:
            values[F.RISK_SCORE] = reported
            values[F.RISK_LEVEL] = rank
            values[F.RISK_AT_S] = now_s
            if rank >= 1 or values[F.SIM_CHANGED_S] or values[F.DEVICE_CHANGED_S]:
                output.risk = self._risk(values, view.entity_type, view.entity, score=reported, level=level,
                                         reasons=reasons, now_ms=now_ms, campaign=campaign,
                                         number_enc=view.number_enc, key_id=view.key_id)
        if rank >= self._alert_rank and score >= policy.level_floor[policy.alert_level]:
            in_episode = values[F.EPISODE_S] and now_s - values[F.LAST_HIGH_S] <= policy.cooldown_ms // 1000
            if not in_episode:
                values[F.EPISODE_S] = now_s
                output.alerts = [self._alert(values, view, score=score, level=level, reasons=reasons,
                                             features=features, now_ms=now_ms, campaign=campaign)]
            values[F.LAST_HIGH_S] = now_s

    def _campaign(self, values: list[Any], entity_type: EntityType) -> str | None:
        """Group entities acting together from what they share: a site (cell) and a day, else a device.

        A farm is a place: its modems or phones and every SIM in them are served by the same
        cell(s), while each modem is a device of its own — anchoring on the device split one
        farm into a campaign per modem (2.4-3.2 per SMS farm in the backtests). The anchor is
        the lowest fingerprint among the entity's recent cells (stable while it stays put, and
        shared by members that have seen the same cells) and the UTC day; an entity seen on no
        cell falls back to its device, else it has none. Numbers linked by a flagged device
        take the device's campaign from the link. Derived only from the entity's own state, so
        replicas that own different partitions name the same campaign without talking.
        """
        start, end = F.NUMBER.set_at["cell"] if entity_type == "number" else F.DEVICE.set_at["cell"]
        cells = [int(c) for c in values[start:end] if c]
        if cells:
            return _campaign_of(f"cell:{min(cells):08x}:{int(values[F.LAST_MS]) // 86_400_000}")
        device = int(values[F.DEVICE_FP])
        return _campaign_of(f"device:{device:016x}") if device else None

    def _risk(self, values: list[Any], entity_type: EntityType, entity: str, *, score: int, level: Level,
              reasons: list[Reason], now_ms: int, campaign: str | None = None, number_enc: str | None = None,
              key_id: str | None = None) -> Risk:
        """The Risk record: the entity's own verdict, combined (numbers) with an active link flag."""
        flagged = LEVELS.index(level) >= 1
        expires_s = values[F.FLAG_EXPIRES_S] if flagged and values[F.FLAG_EXPIRES_S] else 0
        first_s = values[F.FLAG_FIRST_S] if flagged else 0
        if entity_type == "number":
            at = F.NUMBER.link_at
            link_score = int(values[at + F.LINK_SCORE])
            if link_score and values[at + F.LINK_EXPIRES_S] > now_ms // 1000:
                link_reason = _link_reason(link_score)
                if link_score > score:
                    score, level, reasons = link_score, self.policy.level_of(link_score), [link_reason, *reasons]
                else:
                    reasons = [*reasons, link_reason]
                flagged = True
                expires_s = max(expires_s, int(values[at + F.LINK_EXPIRES_S]))
                link_first = int(values[at + F.LINK_S])
                first_s = min(first_s, link_first) if first_s else link_first
                if campaign is None and LEVELS.index(level) >= 2:
                    # flagged through its device, not on its own: the number's own site names
                    # the campaign (the device's for a SIM in a farm), so it does not vanish
                    campaign = self._campaign(values, "number")
        if not expires_s:
            expires_s = now_ms // 1000 + self.policy.ttl_ms // 1000
        return Risk(
            entity_type=entity_type, entity=entity, score=score, level=level, reasons=reasons[:5],
            updated_at=iso_ms(now_ms), expires_at=iso_s(expires_s), model_version=self.model_version,
            first_flagged_at=iso_s(first_s) if flagged and first_s else None,
            sim_changed_at=iso_s(values[F.SIM_CHANGED_S]) if values[F.SIM_CHANGED_S] else None,
            device_changed_at=iso_s(values[F.DEVICE_CHANGED_S]) if values[F.DEVICE_CHANGED_S] else None,
            campaign_id=campaign,
            number_enc=number_enc if entity_type == "number" else None,
            key_id=key_id if entity_type == "number" and number_enc else None,
        )

    def _alert(self, values: list[Any], view: View, *, score: int, level: Level, reasons: list[Reason],
               features: dict[str, float], now_ms: int, campaign: str | None) -> Alert:
        episode = int(values[F.EPISODE_S])
        alert_id = hashlib.sha256(
            f"{view.entity_type}|{view.entity}|{episode}|{self.model_version}".encode()).hexdigest()[:32]
        window = reasons[0].window if reasons else "1h"
        span_ms = {"5m": 300_000, "1h": 3_600_000, "24h": 86_400_000}.get(window, 3_600_000)
        evidence = {k: round(v, 2) for k, v in features.items() if v > 0.0}
        evidence["views_total"] = float(values[F.N_VIEWS])
        return Alert(
            alert_id=alert_id, entity_type=view.entity_type, entity=view.entity, level=level, score=score,
            reasons=reasons[:5], evidence=evidence,
            window=Window(start=iso_ms(now_ms - span_ms), end=iso_ms(now_ms)),
            model_version=self.model_version, raised_at=iso_ms(now_ms), campaign_id=campaign,
            number_enc=view.number_enc if view.entity_type == "number" else None,
            key_id=view.key_id if view.entity_type == "number" and view.number_enc else None,
            ingested_ms=view.ingested_ms,
        )

    # -- device -> number links -----------------------------------------------------------------
    def _send_link(self, values: list[Any], view: View, reasons: list[Reason], output: EngineOutput) -> None:
        """A flagged device's view names the number acting on it: link that number (once per run of
        views by the same number, and again whenever the device starts a new alert episode)."""
        assert view.number is not None
        at = F.DEVICE.link_at + F.LINK_FP
        number_fp = F.fp32(view.number)
        if number_fp == values[at] and not output.alerts:
            return
        values[at] = number_fp
        link = Link(
            number=view.number, device=view.entity, device_score=int(values[F.RISK_SCORE]),
            device_episode_s=int(values[F.EPISODE_S]), reason=reasons[0].code if reasons else "DEVICE_FLAGGED",
            occurred_ms=view.occurred_ms, key_id=view.key_id, ingested_ms=view.ingested_ms,
            number_enc=view.number_enc, campaign_id=self._campaign(values, view.entity_type))
        if output.alerts:
            # a new episode: every partition links the numbers it has seen on this device (the
            # SIMs that left a farm before it was recognisable) and remembers it for later ones
            output.links = [link, msgspec.structs.replace(link, number="", number_enc=None, broadcast=True)]
        else:
            output.links = [link]

    def apply_link(self, link: Link) -> EngineOutput:
        """Apply a number's link to a flagged device (from ``fraudradar.links``, or directly in a backtest).

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
        if not self._link_rank or number in policy.a2p_allow:
            return output
        points, level = self._link_points(link)
        if level == "none":
            return output
        t_ms = min(max(link.occurred_ms, 0), _EVENT_MS_MAX)
        t_s = t_ms // 1000
        expires = t_s + policy.flag_ttl_ms[level] // 1000
        if expires * 1000 <= self.watermark_ms - policy.grace_ms:
            return output                       # a link that would already have expired
        self.counters["links"] += 1
        table = self.store.numbers
        layout = table.layout
        key = entity_key(number)
        packed = table.records.get(key)
        values = layout.unpack(packed) if packed is not None else layout.empty()
        at = layout.link_at
        active = values[at + F.LINK_SCORE] and values[at + F.LINK_EXPIRES_S] > t_s
        before = (int(values[at + F.LINK_SCORE]), int(values[at + F.LINK_EXPIRES_S])) if active else (0, 0)
        values[at + F.LINK_S] = min(int(values[at + F.LINK_S]), t_s) if active else t_s
        values[at + F.LINK_SCORE] = max(before[0], points)
        values[at + F.LINK_EXPIRES_S] = max(before[1], expires)
        output.score = max(int(values[at + F.LINK_SCORE]), int(values[F.RISK_SCORE]))
        episode_fp = _episode_fp(link.device, link.device_episode_s)
        if episode_fp != values[at + F.LINK_FP] and LEVELS.index(level) >= self._alert_rank:
            values[at + F.LINK_FP] = episode_fp
            output.alerts = [self._link_alert(link, points, level, t_ms)]
        after = (int(values[at + F.LINK_SCORE]), int(values[at + F.LINK_EXPIRES_S]))
        # a new Risk when the link flag starts, changes score, or its expiry moves by an hour or more
        if after != before and (not active or after[0] != before[0] or after[1] - before[1] >= 3600):
            own_level = LEVELS[int(values[F.RISK_LEVEL])]
            output.risk = self._risk(values, "number", number, score=int(values[F.RISK_SCORE]), level=own_level,
                                     reasons=[], now_ms=t_ms, campaign=_link_campaign(link),
                                     number_enc=link.number_enc, key_id=link.key_id)
        table.records[key] = layout.pack(values)
        table.dirty.add(key)
        return output

    def _link_points(self, link: Link) -> tuple[int, Level]:
        """A link flag's score (the device's, capped at ``links.max_points``) and its level."""
        points = min(max(int(link.device_score), 0), self._link_max_points)
        return points, self.policy.level_of(points)

    def _apply_broadcast(self, link: Link) -> EngineOutput:
        """A device started an alert episode: link every number here whose device it is, and
        remember the device so numbers seen on it later are linked too (``_link_remembered``).

        Either way a number gets the same alert id, whichever of its views and the broadcast
        this partition processes first — so replicas and crash replays agree.
        """
        output = EngineOutput("device", link.device, 0)
        policy = self.policy
        _, level = self._link_points(link)
        if not self._link_rank or level == "none":
            return output
        t_s = min(max(link.occurred_ms, 0), _EVENT_MS_MAX) // 1000
        expires = t_s + policy.flag_ttl_ms[level] // 1000
        table = self.store.flagged
        layout = table.layout
        key = entity_key(link.device)
        packed = table.records.get(key)
        values = layout.unpack(packed) if packed is not None else layout.empty()
        device_fp = F.fp64(link.device)
        if int(values[F.EPISODE_S]) == link.device_episode_s and values[layout.link_at + F.LINK_EXPIRES_S] >= expires:
            return output                                  # a redelivered broadcast
        values[F.LAST_MS] = max(int(values[F.LAST_MS]), t_s * 1000)
        values[F.DEVICE_FP] = device_fp
        values[F.EPISODE_S] = link.device_episode_s
        values[F.RISK_SCORE] = max(0, min(int(link.device_score), 100))
        values[F.BASE_MS] = _campaign_bits(link.campaign_id)
        values[layout.link_at + F.LINK_EXPIRES_S] = max(int(values[layout.link_at + F.LINK_EXPIRES_S]), expires)
        table.records[key] = layout.pack(values)
        table.dirty.add(key)
        self._flagged_index[device_fp] = key
        numbers = self.store.numbers
        offset = F.DEVICE_FP_OFFSET
        unpack = _U64.unpack_from
        on_device = [k for k, rec in numbers.records.items() if unpack(rec, offset)[0] == device_fp]
        alerts: list[Alert] = []
        risks: list[Risk] = []
        for number_key in on_device:
            out = self.apply_link(msgspec.structs.replace(link, number=entity_text(number_key), broadcast=False))
            alerts += out.alerts
            if out.risk is not None:
                risks.append(out.risk)
        output.alerts, output.risk_updates = alerts, risks
        return output

    def _link_remembered(self, values: list[Any], view: View, output: EngineOutput) -> None:
        """A number seen on a device this partition remembers as flagged: link it (once per episode)."""
        key = self._flagged_index.get(int(values[F.DEVICE_FP]))
        if key is None:
            return
        packed = self.store.flagged.records.get(key)
        if packed is None:
            return
        device = self.store.flagged.layout.unpack(packed)
        if device[F.FLAGGED.link_at + F.LINK_EXPIRES_S] * 1000 <= view.occurred_ms:
            return
        device_text = entity_text(key)
        episode = int(device[F.EPISODE_S])
        if values[F.NUMBER.link_at + F.LINK_FP] == _episode_fp(device_text, episode):
            return                                         # already linked for this episode
        out = self.apply_link(Link(
            number=view.entity, device=device_text, device_score=int(device[F.RISK_SCORE]),
            device_episode_s=episode, reason="DEVICE_FLAGGED", occurred_ms=view.occurred_ms, key_id=view.key_id,
            ingested_ms=view.ingested_ms, number_enc=view.number_enc,
            campaign_id=_campaign_from_bits(int(device[F.BASE_MS]))))
        if out.alerts:
            output.alerts = [*output.alerts, *out.alerts]
        if out.risk is not None:
            output.risk_updates = [*output.risk_updates, out.risk]

    def _link_alert(self, link: Link, points: int, level: Level, t_ms: int) -> Alert:
        alert_id = hashlib.sha256(f"number|{link.number}|link|{link.device}|{link.device_episode_s}|"
                                  f"{self.model_version}".encode()).hexdigest()[:32]
        reason = _link_reason(points, link.reason)
        return Alert(
            alert_id=alert_id, entity_type="number", entity=link.number, level=level, score=points,
            reasons=[reason], evidence={"device_risk": float(link.device_score)},
            window=Window(start=iso_ms(max(0, link.device_episode_s * 1000)), end=iso_ms(t_ms)),
            model_version=self.model_version, raised_at=iso_ms(t_ms), campaign_id=_link_campaign(link),
            number_enc=link.number_enc, key_id=link.key_id if link.number_enc else None,
            ingested_ms=link.ingested_ms or None,
        )

    # ------------------------------------------------------------------------------------------
    def _sweep(self, output: EngineOutput) -> None:
        """Forget idle entities (event-time TTL) and expire flags; called as event time advances."""
        policy = self.policy
        horizon = self.watermark_ms - policy.grace_ms
        self.next_sweep_ms = self.watermark_ms + policy.sweep_every_ms
        tombstones: list[tuple[EntityType, str]] = []
        risk_updates: list[Risk] = []
        for table in (self.store.numbers, self.store.devices):
            self._sweep_table(table, horizon, tombstones, risk_updates)
        flagged = self.store.flagged
        horizon_s = horizon // 1000
        for key in [k for k, v in flagged.records.items() if flagged.layout.link_tail(v)[F.LINK_EXPIRES_S] < horizon_s]:
            del flagged.records[key]
            flagged.dirty.add(key)
        if len(self._flagged_index) != len(flagged.records):
            self._flagged_index = {fp: key for fp, key in self._flagged_index.items() if key in flagged.records}
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
        scan = self._scan(*args) if self._scan is not None else None
        idle, expired = scan if scan is not None else F.scan_records(*args)
        for key in idle:
            values = layout.unpack(records[key])
            link_expires = int(values[at + F.LINK_EXPIRES_S])
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
            if values[F.RISK_LEVEL] or values[F.SIM_CHANGED_S] or values[F.DEVICE_CHANGED_S] or link_expires:
                tombstones.append((kind, entity_text(key)))
        # (an idle entity is deleted, or kept with only a link flag that has not expired: the
        # scan's exclusion of idle keys from ``expired`` is what a second pass would find)
        for key in expired:
            values = layout.unpack(records[key])
            if 0 < values[F.FLAG_EXPIRES_S] < horizon_s:
                values[F.FLAG_FIRST_S] = values[F.FLAG_EXPIRES_S] = 0
                values[F.RISK_SCORE] = values[F.RISK_LEVEL] = 0
                values[F.MODEL_POINTS] = 0.0
            if 0 < values[at + F.LINK_EXPIRES_S] < horizon_s:
                # LINK_FP stays: a late redelivery of the same link must not alert again
                values[at + F.LINK_S] = values[at + F.LINK_EXPIRES_S] = values[at + F.LINK_SCORE] = 0
            records[key] = layout.pack(values)
            table.dirty.add(key)
            entity = entity_text(key)
            flagged = values[F.RISK_LEVEL] or values[at + F.LINK_SCORE]
            if flagged or values[F.SIM_CHANGED_S] or values[F.DEVICE_CHANGED_S]:
                # still flagged by the other verdict, or SIM/device swap answers need the change dates
                level = LEVELS[int(values[F.RISK_LEVEL])]
                risk_updates.append(self._risk(values, kind, entity, score=int(values[F.RISK_SCORE]),
                                               level=level, reasons=[], now_ms=horizon_ms))
            else:
                tombstones.append((kind, entity))

    # ------------------------------------------------------------------------------------------
    def learn_feedback(self, feedback: Feedback) -> None:
        """Train the supervised learner with the entity's current features (if it is tracked here)."""
        table = self.store.table(feedback.entity_type)
        packed = table.records.get(entity_key(feedback.entity))
        if packed is None:
            self.counters["feedback_unmatched"] += 1
            return
        # Bounded weight per partner: its labels may be at most `feedback_partner_share` of all
        # learned here (after a start allowance), so one partner cannot steer the learner alone.
        learner = self.models[feedback.entity_type].feedback
        by_partner = self.feedback_by_partner
        mine, total = by_partner.get(feedback.partner, 0), sum(by_partner.values())
        share = self.policy.models.feedback_partner_share
        if mine + 1 > share * (total + 1) + 4 * learner.min_each:
            self.counters["feedback_capped"] = self.counters.get("feedback_capped", 0) + 1
            return
        by_partner[feedback.partner] = mine + 1
        values = table.layout.unpack(packed)
        feats = F.number_features(values) if feedback.entity_type == "number" else F.device_features(values)
        feats["modem_device"] = 1.0 if int(values[F.TAC]) in self._modem_tacs else 0.0
        fraud = feedback.label == "confirmed_fraud"
        self.models[feedback.entity_type].feedback.learn_one(feats, fraud)
        self.journal.feedback(feedback.entity_type, feats, fraud)
        self.counters["feedback"] += 1

    def features_of(self, entity_type: EntityType, entity: str) -> dict[str, float] | None:
        table = self.store.table(entity_type)
        packed = table.records.get(entity_key(entity))
        if packed is None:
            return None
        values = table.layout.unpack(packed)
        return F.number_features(values) if entity_type == "number" else F.device_features(values)

    # -- snapshot / restore ---------------------------------------------------------------------
    def changelog(self) -> list[tuple[bytes, bytes | None]]:
        """``scorer-state`` records for a commit: deltas of changed entities, snapshot progress,
        manifest and tombstones (``services.scorer.changelog``); a few large records per commit."""
        return self.changelog_writer.records(self.store)

    def commit_records(self, checkpoint: bool = False) -> list[tuple[bytes, bytes | None]]:
        """Everything one commit writes to ``scorer-state[p]``, in the order that lets a restore
        tell a commit a crash cut short: first the corrections a restore owes (``_undo``), then
        the entity and model records, then the commit marker, then the tombstones.

        The producer is idempotent (kafka-python's default with ``acks=all``), so a partition
        receives a *prefix* of what was sent: a commit whose marker landed landed whole, and
        what follows the last marker is an unfinished commit, which ``finish_restore`` drops
        and undoes. Tombstones go after the marker because they only remove what the commit
        made obsolete: losing some of them loses nothing (a restore tombstones leftovers again).
        Empty when the engine has nothing to write (an idle partition writes nothing).
        """
        records = [*self.changelog(), *self.model_records(checkpoint=checkpoint)]
        undo, self._undo = self._undo, []
        if not records and not undo:
            return []
        return [*undo, *(r for r in records if r[1] is not None), (COMMIT_KEY, COMMIT_MARKER),
                *(r for r in records if r[1] is None)]

    def model_records(self, checkpoint: bool = False) -> list[tuple[bytes, bytes | None]]:
        """The models' ``scorer-state`` records for a commit, sent after ``changelog()``'s
        (``services.scorer.modellog``): a checkpoint and tombstones for the journal it replaces
        when asked (or when a restore could not continue one), else the journal batch of what
        the models learned since the last call (none when nothing changed)."""
        journal = self.journal
        # an idle engine's models are those of its last checkpoint: no point in another copy
        if (checkpoint and (journal.since_checkpoint or journal.live or journal.stale)) or journal.needs_checkpoint:
            blob = self.checkpoint()
            return [(MODELS_KEY, blob), *self.journal.checkpointed(self.feedback_offset, self.next_sweep_ms)]
        return list(self.journal.batches(self._signing_key, self.model_version, self.feedback_offset,
                                         self.next_sweep_ms))

    def apply_changelog(self, key: bytes, value: bytes | None) -> None:
        """Collect one ``scorer-state`` record during a restore, in log order (``finish_restore``
        applies the state, ``restore_models`` the checkpoint and journal). A record counts once
        a commit marker after it closes its commit (``commit_records``)."""
        if key == COMMIT_KEY:
            pending, self._restore_pending = self._restore_pending, []
            for k, v in pending:
                self._collect(k, v)
            self._restore_marked = True
            return
        self._restore_pending.append((key, value))

    def _collect(self, key: bytes, value: bytes | None) -> None:
        if key == MODELS_KEY:
            self._restored_models = value
            return
        if is_journal_key(key):
            self._restored_journal.pop(key, None)      # a rewrite moves it to its new place
            if value is not None:
                self._restored_journal[key] = value
            return
        if self._reader is None:
            self._reader = ChangelogReader()
        self._reader.add(key, value)

    def _discard_tail(self, tail: list[tuple[bytes, bytes | None]]) -> None:
        """Records after the last commit marker: a commit a crash cut short (its offsets were
        never committed, its views come again). Dropped, and undone at the next commit: each
        key it wrote gets its committed value back (or a tombstone), so neither a later restore
        nor compaction can pick them up. Sequence numbers it used are not reused, and the models
        take a fresh checkpoint (the journal goes on after a gap)."""
        keys = list(dict.fromkeys(key for key, value in tail if value is not None))
        self.discarded_records = sum(1 for _, value in tail if value is not None)
        if not keys:
            return                                 # only the last commit's tombstones: nothing to undo
        undo: list[tuple[bytes, bytes | None]] = []
        journal_seqs: list[int] = []
        for key in keys:
            if key == MODELS_KEY:
                undo.append((key, self._restored_models))
            elif is_journal_key(key):
                undo.append((key, self._restored_journal.get(key)))
                journal_seqs.append(int.from_bytes(key[-8:], "big"))
            elif ChangelogReader.owns(key):
                if self._reader is None:
                    self._reader = ChangelogReader()
                undo.append((key, self._reader.committed(key)))
            # anything else on the topic is not this engine's to correct
        if self._reader is not None:
            self._reader.reserve(keys)
        self._tail_journal_next = max(journal_seqs, default=-1) + 1
        self._undo = undo

    def finish_restore(self) -> int:
        """Rebuild the state from the collected records; returns the entity entries applied."""
        tail, self._restore_pending = self._restore_pending, []
        self.discarded_records = 0
        if tail and not self._restore_marked:
            for key, value in tail:                # a log written before commit markers: all of it
                self._collect(key, value)
        elif tail:
            self._discard_tail(tail)
        self._restore_marked = False
        reader, self._reader = self._reader, None
        if reader is None:
            return 0
        applied = reader.apply(self.store, self.changelog_writer)
        unpack = _U64.unpack_from
        self._flagged_index = {unpack(rec, F.DEVICE_FP_OFFSET)[0]: key
                               for key, rec in self.store.flagged.records.items()}
        last = max((table.latest_ms() for table in (self.store.numbers, self.store.devices)), default=0)
        if last > self.watermark_ms:
            self.watermark_ms = last
            self.next_sweep_ms = last + self.policy.sweep_every_ms
        return applied

    def checkpoint(self) -> bytes:
        """Signed, compressed snapshot of the models (not the entity state, which is changelogged)."""
        payload = zlib.compress(pickle.dumps({
            "format": CHECKPOINT_FORMAT, "model_version": self.model_version, "partition": self.partition,
            "models": self.models, "feedback_offset": self.feedback_offset,
            "next_sweep_ms": self.next_sweep_ms, "journal_seq": self.journal.next_seq,
        }, protocol=pickle.HIGHEST_PROTOCOL), 6)
        return sign(self._signing_key, payload)

    def restore_checkpoint(self, blob: bytes) -> bool:
        """Load models from ``checkpoint()`` output; False (and keep fresh models) on a version change."""
        return self._load_checkpoint(blob) is not None

    def _load_checkpoint(self, blob: bytes) -> int | None:
        """The journal sequence the checkpoint continues at; None on a version change."""
        payload = verified(self._signing_key, blob, "model checkpoint")
        data = pickle.loads(zlib.decompress(payload))  # noqa: S301 - verified HMAC above
        if data.get("format") != CHECKPOINT_FORMAT or data.get("model_version") != self.model_version:
            return None
        self.models = data["models"]
        self.feedback_offset = int(data["feedback_offset"])
        self.next_sweep_ms = max(self.next_sweep_ms, int(data["next_sweep_ms"]))
        return int(data.get("journal_seq", 0))

    def restore_models(self) -> ModelRestore:
        """After ``finish_restore``: the collected checkpoint, then the journal batches after it,
        so the models (and feedback offset, sweep schedule) are those of the last commit. Never
        raises: what could not be used is reported, and fresh or older models go on."""
        blob, journal = self._restored_models, self._restored_journal
        self._restored_models, self._restored_journal = None, {}
        report = ModelRestore()
        start: int | None = 0                         # journal sequence to continue at (None: none)
        if blob is not None:
            try:
                start = self._load_checkpoint(blob)
                report.checkpoint = "restored" if start is not None else "other_version"
            except (CheckpointError, zlib.error, pickle.UnpicklingError, EOFError, KeyError, TypeError,
                    ValueError) as exc:
                report.checkpoint, report.error, start = "rejected", str(exc), None
        seqs = {key: int.from_bytes(key[-8:], "big") for key in journal}
        self.journal.next_seq = max([start or 0, self._tail_journal_next, *(seq + 1 for seq in seqs.values())])
        # the consecutive batches from the checkpoint's sequence on (log order is sequence order):
        # after a missing one (removed from the topic by something else: a commit cut short is
        # dropped whole before this, see ``_discard_tail``) the rest would teach the models out of order
        usable: list[tuple[bytes, bytes]] = []
        for key, value in journal.items():
            if start is None or seqs[key] < start:
                continue
            if seqs[key] != start + len(usable):
                report.error = report.error or f"model journal: batch {start + len(usable)} missing before {seqs[key]}"
                break
            usable.append((key, value))
        batches, error = decode_batches(self._signing_key, usable)
        report.error = report.error or error
        foreign = False
        for key, batch in batches:
            if batch["model_version"] != self.model_version:
                foreign = True
                continue
            for is_feedback, entity_type, features, extra in entries(batch):
                models = self.models["number" if entity_type == "number" else "device"]
                if is_feedback:
                    models.feedback.learn_one(features, bool(extra))
                else:
                    for name, detector in models.detectors.items():
                        detector.learn_one(features, extra.get(name))
                report.entries += 1
            self.feedback_offset = int(batch["feedback_offset"])
            self.next_sweep_ms = int(batch["next_sweep_ms"])
            self.journal.live.append(seqs[key])
            report.batches += 1
        live = set(self.journal.live)
        self.journal.stale = [key for key in journal if seqs[key] not in live]
        self.journal.since_checkpoint = report.entries
        # anything unusable: a fresh checkpoint at the next commit makes the log consistent again
        self.journal.needs_checkpoint = (foreign or report.error is not None or bool(self._undo)
                                         or report.checkpoint in ("other_version", "rejected"))
        self._tail_journal_next = 0
        return report

    # -- metrics helpers ------------------------------------------------------------------------
    def entities(self) -> dict[EntityType, int]:
        return {"number": len(self.store.numbers), "device": len(self.store.devices)}

    def state_bytes(self) -> int:
        return self.store.numbers.bytes_used() + self.store.devices.bytes_used()


def _episode_fp(device: str, episode_s: int) -> int:
    """32-bit fingerprint of a device's alert episode (a number's LINK_FP: linked once per episode)."""
    return int(hashlib.blake2b(f"{device}|{episode_s}".encode(), digest_size=4).hexdigest(), 16) or 1



def _campaign_of(anchor: str) -> str:
    return "cmp-" + hashlib.blake2b(anchor.encode(), digest_size=8).hexdigest()


def _device_campaign(device: str) -> str:
    """The campaign of a device seen on no cell (the anchor ``_campaign`` falls back to)."""
    return _campaign_of(f"device:{F.fp64(device):016x}")


def _link_campaign(link: Link) -> str:
    """The campaign a linked number joins: its device's, as the link names it (older links: by device)."""
    return link.campaign_id or _device_campaign(link.device)


def _campaign_bits(campaign: str | None) -> int:
    """A campaign id as the signed 64-bit value a remembered flagged device keeps (0: none)."""
    if not campaign or not campaign.startswith("cmp-") or len(campaign) != 20:
        return 0
    return int.from_bytes(bytes.fromhex(campaign[4:]), "big", signed=True)


def _campaign_from_bits(bits: int) -> str | None:
    return "cmp-" + bits.to_bytes(8, "big", signed=True).hex() if bits else None


def _link_reason(points: int, device_reason: str | None = None) -> Reason:
    why = f" for {device_reason}" if device_reason else ""
    return Reason(code="ON_FLAGGED_DEVICE", feature="device_risk", value=float(points), window="event",
                  rarity="linked", text=f"ON_FLAGGED_DEVICE: acted on a device flagged{why} (device risk {points})")


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
