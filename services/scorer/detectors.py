"""The detectors of a partition: which models watch which features, and their versions."""

from __future__ import annotations

from collections.abc import Sequence

from models import CalibratedDetector, FeedbackLearner, PoissonBurst, ScaledHalfSpaceTrees, StreamingECOD
from models.burst import BurstAwareHST, Channel
from services.common.records import EntityType
from services.scorer.policy import Policy

DETECTOR_VERSIONS = {"burst": "burst.1", "burst_hst": "bhst.1", "ecod": "ecod.1", "hst": "hst.2"}

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
