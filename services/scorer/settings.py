"""The scorer service's settings (``FRAUDRADAR_*`` environment variables, docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.config import CommonSettings


class ScorerSettings(CommonSettings):
    group_id: str = Field("fraudradar-scorer", description="consumer group of the scorer replicas")
    instance_id: str | None = Field(None, description="static group membership id (e.g. the pod name)")
    policy_file: Path | None = Field(None, description="policy YAML (default: the packaged policy.yaml)")
    commit_interval_s: float = Field(2.0, description="commit (and write the state changelog) this often")
    checkpoint_interval_s: float = Field(60.0, description="model checkpoint per partition this often")
    journal_max_entries: int = Field(
        20_000, ge=1, description="model checkpoint sooner once this many learned points are journalled "
                                  "since the last (a restore replays each of them)")
    feedback_poll_s: float = Field(1.0, description="read partner feedback this often")
    seed: int = Field(0, description="seed of the detectors (same seed, same scores)")
    max_poll_records: int = Field(2000, description="records per poll")
    session_timeout_ms: int = Field(45_000, description="group session timeout (keep above a pod restart "
                                                        "with static membership)")
    exactly_once: bool = Field(True, description="each commit one Kafka transaction: outputs, changelog, model "
                                                 "journal and offsets (docs/scorer.md, exactly-once)")
    transaction_timeout_ms: int = Field(
        20_000, ge=1000, description="the broker aborts a commit transaction left open this long (a frozen or "
                                     "dead replica; until then read_committed readers wait at its first record); "
                                     "above commit_interval_s plus a batch and a commit's flush")
