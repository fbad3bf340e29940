"""Topic names, partitioning, compaction and retention (docs/architecture.md "Topics and keys").

Names live under a configurable prefix (``FRAUDRADAR_TOPIC_PREFIX``), so several
installations or test runs can share one cluster. ``ensure_topics`` is idempotent: it creates
what is missing and aligns configs of what exists; it never deletes or shrinks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its suffix after the prefix, partitions and broker-side configs."""

    suffix: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)
    doc: str = ""


# `telco.events` is the telco's own raw topic: it is not under the fraudradar prefix in
# production, but tests and the demo create it under the prefix so runs do not collide.
RAW = "telco.events"
NUMBERS = "fraudradar.numbers"
DEVICES = "fraudradar.devices"
DLQ = "fraudradar.dlq"
RISK = "fraudradar.risk"
ALERTS = "fraudradar.alerts"
SCORER_STATE = "fraudradar.scorer-state"
FEEDBACK = "fraudradar.feedback"
AUDIT = "fraudradar.audit"
PARTNER_STATE = "fraudradar.partner-state"
LINKS = "fraudradar.links"
CALLS = "fraudradar.calls"
FIRST_SEEN = "fraudradar.first-seen"
# what the scorer group consumes (co-partitioned); "caught up" means all three are committed
SCORER_INPUTS = (NUMBERS, DEVICES, LINKS)

_COMPACT = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": str(3600 * 1000)}


def default_specs(partitions: int = 6) -> list[TopicSpec]:
    """The topics of one installation; views and state share a partition count (co-partitioned)."""
    return [
        TopicSpec(RAW, partitions, {"retention.ms": str(3 * DAY_MS)},
                  "raw telco events; inside the telco's boundary, short retention"),
        TopicSpec(NUMBERS, partitions, {"retention.ms": str(7 * DAY_MS)},
                  "pseudonymised number views in bundles (no key), on murmur2(number pseudonym) mod N"),
        TopicSpec(DEVICES, partitions, {"retention.ms": str(7 * DAY_MS)},
                  "pseudonymised device views in bundles (no key), on murmur2(device pseudonym) mod N"),
        TopicSpec(DLQ, 1, {"retention.ms": str(7 * DAY_MS)},
                  "rejected raw input with reason headers; inside the telco's boundary"),
        TopicSpec(RISK, partitions, dict(_COMPACT),
                  "latest risk per entity (compacted; tombstone on expiry)"),
        TopicSpec(ALERTS, partitions, {"retention.ms": str(30 * DAY_MS)},
                  "red flags, key = alert_id"),
        TopicSpec(LINKS, partitions, {"retention.ms": str(7 * DAY_MS)},
                  "numbers seen acting on flagged devices, key = number pseudonym (scorer → scorer)"),
        # min.compaction.lag.ms: a commit a crash cut short stays beside the records it would
        # supersede until the restored scorer has undone it (docs/scorer.md, "commit markers")
        TopicSpec(SCORER_STATE, partitions, {**_COMPACT, "min.compaction.lag.ms": str(3600 * 1000)},
                  "scorer per-entity state changelog (compacted), co-partitioned with the views"),
        TopicSpec(FEEDBACK, 1, {"retention.ms": str(365 * DAY_MS)},
                  "partner reports: confirmed fraud / false positive"),
        TopicSpec(AUDIT, 1, {"retention.ms": str(365 * DAY_MS)},
                  "who looked up what, when, for which purpose"),
        # live call signalling: kept a day (the API rebuilds its call state from the last hours
        # after a restart); nothing older is needed for a check at payment time
        TopicSpec(CALLS, partitions, {"retention.ms": str(DAY_MS)},
                  "call-state steps (started/answered/ended), key = subscriber pseudonym; pseudonyms only"),
        # numbers the scorer saw for the first time (within its idle horizon): the API keeps a day
        # of them to class a call's counterpart as first seen today; two days so a restart finds one
        TopicSpec(FIRST_SEEN, partitions, {"retention.ms": str(2 * DAY_MS)},
                  "numbers first seen by the scorer, key = number pseudonym; pseudonyms only"),
        TopicSpec(PARTNER_STATE, 1, dict(_COMPACT),
                  "api: watch-lists, webhooks, overrides, contests, delivery cursors (compacted; pseudonyms only)"),
    ]


def topic_name(prefix: str, base: str) -> str:
    """``prefix`` + base name; an empty prefix gives the production names (docs/architecture.md)."""
    return f"{prefix}{base}"


def ensure_topics(bootstrap: str, prefix: str = "", partitions: int = 6, replication: int = 1,
                  admin_config: Mapping[str, object] | None = None) -> dict[str, str]:
    """Create missing topics and align configs; return ``{name: "created"|"exists"}``."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fraudradar-topics", **dict(admin_config or {}))
    try:
        existing = set(admin.list_topics())
        result: dict[str, str] = {}
        missing = []
        for spec in default_specs(partitions):
            name = topic_name(prefix, spec.suffix)
            if name in existing:
                result[name] = "exists"
                admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=dict(spec.configs))])
            else:
                missing.append(NewTopic(name, spec.partitions, replication, topic_configs=dict(spec.configs)))
                result[name] = "created"
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:  # a concurrent ensure won the race: fine
                pass
        return result
    finally:
        admin.close()
