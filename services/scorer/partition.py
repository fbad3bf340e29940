"""``PartitionScorer``: one input partition's scorer, put together from its parts.

The parts are small objects handed the partition's state and the policy: the per-view pipeline
(``engine``), verdicts (``verdicts``), device→number links (``links``), the sweep (``sweep``)
and the state with its changelog and restore (``state``). The ``score`` service holds one per
input partition, the backtest one for everything.
"""

from __future__ import annotations

from pathlib import Path

from services.common.pseudonym import Pseudonymizer
from services.common.records import EntityType, Feedback, Link, View
from services.scorer import catalogue
from services.scorer import features as F
from services.scorer import layout as L
from services.scorer.detectors import model_version, partition_models
from services.scorer.engine import ScoringEngine
from services.scorer.links import Links
from services.scorer.output import EngineOutput
from services.scorer.policy import Policy
from services.scorer.state import PartitionState, StateStore, entity_key
from services.scorer.sweep import Sweeper
from services.scorer.verdicts import Verdicts


def signing_key(pseudonymizer: Pseudonymizer) -> bytes:
    """The key model checkpoints and journal batches are signed with, derived from the pseudonym
    key: a forged changelog record must not be able to make the scorer unpickle arbitrary objects."""
    return bytes.fromhex(pseudonymizer("cell", "fraudradar:checkpoint-signing"))


class PartitionScorer:
    """One partition's state and the objects acting on it. Not thread-safe: one thread drives it."""

    def __init__(self, policy: Policy, pseudonymizer: Pseudonymizer, seed: int = 0, partition: int = 0,
                 journal: bool = False) -> None:
        self.policy = policy
        self.model_version = model_version(policy)
        self.counters: dict[str, int] = {"views": 0, "skipped": 0, "scored": 0, "learned": 0,
                                         "feedback": 0, "feedback_unmatched": 0, "forgotten": 0, "links": 0,
                                         "links_legitimate": 0,
                                         "a2p_views": 0, "model_rare": 0}
        self.state = PartitionState(partition_models(policy, seed), model_version=self.model_version,
                                    signing_key=signing_key(pseudonymizer), sweep_every_ms=policy.sweep_every_ms,
                                    partition=partition, journal=journal)
        self.verdicts = Verdicts(policy, self.model_version)
        self.links = Links(policy, self.state, self.verdicts, self.counters)
        self.sweeper = Sweeper(policy, self.state, self.verdicts, self.counters)
        self.engine = ScoringEngine(policy, self.state, verdicts=self.verdicts, links=self.links,
                                    sweeper=self.sweeper, counters=self.counters)
        self.feedback_by_partner: dict[str, int] = {}  # labels learned per partner (since start)

    @classmethod
    def default(cls, pseudonymizer: Pseudonymizer, policy_path: Path | None = None, seed: int = 0,
                partition: int = 0, journal: bool = False) -> PartitionScorer:
        """The scorer with the packaged (or given) policy file."""
        return cls(Policy.load(pseudonymizer, policy_path), pseudonymizer, seed=seed, partition=partition,
                   journal=journal)

    @property
    def store(self) -> StateStore:
        return self.state.store

    def process(self, view: View, offset: int | None = None) -> EngineOutput:
        """``engine.process``: apply one view (``offset``, its source position, makes replays no-ops)."""
        return self.engine.process(view, offset)

    def apply_link(self, link: Link) -> EngineOutput:
        """``links.apply``: a number's link to a flagged device, or a device's broadcast."""
        return self.links.apply(link)

    def learn_feedback(self, feedback: Feedback) -> None:
        """Train the supervised learner with the entity's current features (if it is tracked here)."""
        table = self.state.store.table(feedback.entity_type)
        packed = table.records.get(entity_key(feedback.entity))
        if packed is None:
            self.counters["feedback_unmatched"] += 1
            return
        # Bounded weight per partner: its labels may be at most `feedback_partner_share` of all
        # learned here (after a start allowance), so one partner cannot steer the learner alone.
        learner = self.state.models[feedback.entity_type].feedback
        by_partner = self.feedback_by_partner
        mine, total = by_partner.get(feedback.partner, 0), sum(by_partner.values())
        if mine + 1 > self.policy.models.feedback_partner_share * (total + 1) + 4 * learner.min_each:
            self.counters["feedback_capped"] = self.counters.get("feedback_capped", 0) + 1
            return
        by_partner[feedback.partner] = mine + 1
        values = table.layout.unpack(packed)
        feats = F.number_features(values) if feedback.entity_type == "number" else F.device_features(values)
        feats["modem_device"] = 1.0 if int(values[L.TAC]) in self.policy.modem_tacs else 0.0
        fraud = feedback.label == "confirmed_fraud"
        learner.learn_one(catalogue.for_models(feats), fraud)
        self.state.journal.feedback(feedback.entity_type, feats, fraud)
        self.counters["feedback"] += 1

    def features_of(self, entity_type: EntityType, entity: str) -> dict[str, float] | None:
        """The entity's current features (None when it is not tracked here)."""
        table = self.state.store.table(entity_type)
        packed = table.records.get(entity_key(entity))
        if packed is None:
            return None
        values = table.layout.unpack(packed)
        return F.number_features(values) if entity_type == "number" else F.device_features(values)
