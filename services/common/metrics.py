"""Prometheus metrics shared by every Kafka-consuming service (names: docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONSUMER_RECORDS = Counter("fraudradar_consumer_records_total", "Records consumed", ["service", "topic"])
CONSUMER_LAG = Gauge("fraudradar_consumer_lag", "High watermark minus position", ["service", "topic", "partition"])
CONSUMER_COMMITS = Counter("fraudradar_consumer_commits_total", "Successful offset commits", ["service"])
TRANSACTIONS = Counter(
    "fraudradar_transactions_total",
    "Commit transactions by outcome: committed, aborted (our abort after a failure, e.g. a stale "
    "group generation, or a transactional call unanswered in time: the producer replaced), fenced "
    "(the broker fenced the producer: its open transaction was aborted)",
    ["service", "outcome"])
STALE_TXN_OFFSETS = Counter(
    "fraudradar_transaction_stale_offsets_dropped_total",
    "Partitions whose offsets, left in the transactional producer by an offset commit the group "
    "refused (stale membership), were dropped before the next transaction's offsets", ["service"])
COMMITS_FENCED = Counter(
    "fraudradar_consumer_commits_fenced_total",
    "Commits skipped because the broker no longer counts this consumer a member of the group's "
    "current generation (a replica that lost its partitions while stalled)", ["service"])
LAST_COMMIT = Gauge("fraudradar_consumer_last_commit_timestamp_seconds", "Wall time of the last commit", ["service"])
BATCH_SECONDS = Histogram(
    "fraudradar_batch_duration_seconds", "Time to process one polled batch including flush", ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
KAFKA_SLOW_STEPS = Counter(
    "fraudradar_kafka_client_slow_steps_total",
    "Steps of the Kafka client's network event loop that ran past its 0.1 s threshold (kafka-python's "
    "'blocking the event loop' warning, summarised in the log once a minute): CPU starvation or "
    "large fetches; steps near the session timeout delay heartbeats", ["service"])
DLQ = Counter("fraudradar_dlq_total", "Records dead-lettered by reason", ["service", "reason"])
DLQ_LIMIT_TRIPPED = Counter("fraudradar_dlq_limit_tripped_total", "DLQ limit stopped the consumer", ["service"])
