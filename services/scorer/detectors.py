"""The detectors of a partition: which models watch which features, and their versions."""

from __future__ import annotations

from collections.abc import Sequence

from models import CalibratedDetector, FeedbackLearner, PoissonBurst, ScaledHalfSpaceTrees, StreamingECOD
from models.burst import BurstAwareHST, Channel
from services.common.records import EntityType
from services.scorer import catalogue
from services.scorer.policy import Policy
from services.scorer.thresholds import PopulationCuts

DETECTOR_VERSIONS = {"burst": "burst.1", "burst_hst": "bhst.2", "ecod": "ecod.2", "hst": "hst.3"}

# the rate channels the burst-aware detectors watch: (name, 5m, 1h, 24h feature), from the catalogue
BURST_CHANNELS: dict[EntityType, list[Channel]] = {
    "number": list(catalogue.burst_channels("number")), "device": list(catalogue.burst_channels("device"))}


def model_version(policy: Policy) -> str:
    """The version every output names: the policy's plus each configured detector's."""
    return policy.version + "".join("+" + DETECTOR_VERSIONS[d] for d in policy.models.detectors)


class EntityModels:
    """The detectors of one entity type in one partition, the feedback learner and the cuts
    derived from the population they learn (``thresholds.PopulationCuts``; None: the policy's)."""

    cuts: PopulationCuts | None = None       # checkpoints written before the cuts have none

    def __init__(self, entity_type: EntityType, detectors: Sequence[str], warmup: int, seed: int,
                 cuts: PopulationCuts | None = None) -> None:
        self.cuts = cuts
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

    def learn_one(self, features: dict[str, float], raws: dict[str, float]) -> None:
        """Every detector learns ``features`` (``raws``: their raw scores, when known), then the cuts."""
        x = catalogue.for_models(features)       # the cuts see the rules' features, the detectors not all
        for name, detector in self.detectors.items():
            detector.learn_one(x, raws.get(name))
        if self.cuts is not None:
            self.cuts.learn_one(features, self.detectors)


def partition_models(policy: Policy, seed: int) -> dict[EntityType, EntityModels]:
    """Fresh models of one partition: numbers with ``seed``, devices with ``seed + 1``."""
    detectors = list(policy.models.detectors)
    warmup = policy.models.warmup
    return {"number": EntityModels("number", detectors, warmup, seed, PopulationCuts.for_policy(policy, "number")),
            "device": EntityModels("device", detectors, warmup, seed + 1, PopulationCuts.for_policy(policy, "device"))}
