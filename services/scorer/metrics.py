"""The scorer's Prometheus metrics (names and labels exactly as in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

VIEWS = Counter("fraudradar_scorer_views_total", "Views scored", ["entity_type"])
EVENT_TO_ALERT = Histogram(
    "fraudradar_event_to_alert_seconds", "Ingest time of the triggering event to alert produced",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
ENTITIES = Gauge("fraudradar_scorer_entities", "Entities tracked", ["entity_type"])
STATE_BYTES = Gauge("fraudradar_scorer_state_bytes", "Bytes of per-entity state")
SCORE = Histogram("fraudradar_score", "Scores (0-100)", ["model", "entity_type"],
                  buckets=(5, 10, 25, 50, 70, 85, 90, 95, 99, 100))
ALERTS = Counter("fraudradar_alerts_total", "Alerts raised (reason = first reason code)", ["level", "reason"])
LINKS = Counter("fraudradar_scorer_links_total",
                "Device -> number links (direction: sent by a flagged device's scorer, applied by the number's)",
                ["direction"])
ENGINES_KEPT = Counter("fraudradar_scorer_engines_kept_total",
                       "Partitions kept through a rebalance without a restore (the group's committed offsets "
                       "were where the engine stood)")
RESTORE_SECONDS = Gauge("fraudradar_scorer_restore_seconds", "Duration of the last state restore")
RESTORING = Gauge("fraudradar_scorer_restoring", "1 while partitions are being restored")
MODEL_RESTORES = Counter("fraudradar_scorer_model_restores_total",
                         "Partition restores by what the models came back from (restored, none, other_version, "
                         "rejected, journal_error)", ["outcome"])
RESTORE_DISCARDED = Counter("fraudradar_scorer_restore_discarded_records_total",
                            "Records of a commit cut short by a crash (after the last commit marker of a state "
                            "partition) that a restore dropped and undid")
RULE_ALERT_RATE = Gauge("fraudradar_rule_alert_rate",
                        "Alerts of a rule family (first reason code) in the last 24 h of event time per 100k "
                        "active subscribers", ["family"])
RULE_ALERT_BUDGET = Gauge("fraudradar_rule_alert_budget",
                          "The policy's false-alarm budget per rule family (alerts per 100k active subscribers "
                          "per day)", ["family"])
RULE_THRESHOLD = Gauge("fraudradar_rule_threshold",
                       "A rule's graded threshold: the policy's minimum evidence (source=policy) and the one "
                       "derived from the normal population against the false-alarm budget (source=derived; the "
                       "largest over this replica's partitions)", ["entity_type", "rule", "source"])
MODEL_ALERT_CUT = Gauge("fraudradar_model_alert_cut",
                        "A detector's raw-score cut for a model-only alert (MODEL_RARE), derived from the "
                        "false-alarm budget (the largest over this replica's partitions; absent until warm)",
                        ["entity_type", "detector"])
