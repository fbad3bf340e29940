"""The detectors of a partition: which models watch which features, and their versions."""

from __future__ import annotations

from collections.abc import Sequence

from models import CalibratedDetector, FeedbackLearner, PoissonBurst, ScaledHalfSpaceTrees, StreamingECOD
from models.burst import BurstAwareHST, Channel
from services.common.records import EntityType
from services.scorer import catalogue
from services.scorer.policy import Policy

DETECTOR_VERSIONS = {"burst": "burst.1", "burst_hst": "bhst.2", "ecod": "ecod.2", "hst": "hst.3"}

# the rate channels the burst-aware detectors watch: (name, 5m, 1h, 24h feature), from the catalogue
BURST_CHANNELS: dict[EntityType, list[Channel]] = {
    "number": list(catalogue.burst_channels("number")), "device": list(catalogue.burst_channels("device"))}


def model_version(policy: Policy) -> str:
    """The version every output names: the policy's plus each configured detector's."""
    return policy.version + "".join("+" + DETECTOR_VERSIONS[d] for d in policy.models.detectors)


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


def partition_models(policy: Policy, seed: int) -> dict[EntityType, EntityModels]:
    """Fresh models of one partition: numbers with ``seed``, devices with ``seed + 1``."""
    detectors = list(policy.models.detectors)
    return {"number": EntityModels("number", detectors, policy.models.warmup, seed),
            "device": EntityModels("device", detectors, policy.models.warmup, seed + 1)}
