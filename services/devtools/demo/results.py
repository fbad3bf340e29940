"""What the demo found: the alerts on its topic against the injected fraud (live, in stream
time), and the backtest of the same traffic at its true event times (with the HTML report)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from services.devtools.demo.config import pseudonymizer
from services.devtools.demo.console import print_table, say
from services.devtools.demo.processes import Run
from services.devtools.demo.traffic import duration_s


def read_alerts(run: Run) -> list[Any]:
    """Every alert on the demo's alerts topic (decoded wire records)."""
    from kafka import KafkaConsumer, TopicPartition

    from services.common import topics
    from services.common.records import decode_alert

    topic = f"{run.prefix}{topics.ALERTS}"
    consumer = KafkaConsumer(bootstrap_servers=run.bootstrap.split(","), enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=3000, isolation_level="read_committed")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        return [decode_alert(message.value) for message in consumer]
    finally:
        consumer.close()


def summarise(run: Run, truth_path: Path | None, streamed: int) -> list[Any]:
    """Print injected fraud vs flagged with time to detect; return the alerts."""
    alerts = read_alerts(run)
    by_level: dict[str, int] = {}
    for alert in alerts:
        by_level[alert.level] = by_level.get(alert.level, 0) + 1
    levels = ", ".join(f"{n} {level}" for level, n in sorted(by_level.items())) or "none"
    say(f"\n{len(alerts)} alerts raised ({levels})")
    if truth_path is None:
        return alerts
    from services.devtools.simulator.backtest import load_truth
    from services.devtools.simulator.quality import (
        AlertPoint,
        evaluate,
    )

    # The truth file names plaintext numbers and IMEIs; the demo holds the pseudonym key, so
    # it can map them onto the pseudonyms the alerts carry (a real deployment never does this).
    truth = load_truth(truth_path, pseudonymizer(run.config))
    points = [AlertPoint(a.entity_type, a.entity, a.level, _ms(a.raised_at), a.campaign_id) for a in alerts]
    max_scores: dict[tuple[str, str], float] = {}
    for a in alerts:
        key = (a.entity_type, a.entity)
        max_scores[key] = max(max_scores.get(key, 0.0), float(a.score))
    seconds = max(1.0, run.args.minutes * 60)
    evaluation = evaluate(truth, points, max_scores, normal_numbers=run.args.subscribers,
                          duration_days=seconds / 86400, events=streamed, events_per_s=streamed / seconds,
                          model_version=_model_version(alerts), min_level=run.args.min_level)
    speedup = max(1.0, duration_s(run.args.sim_duration) / seconds)
    print_table(evaluation.metrics, run.args.min_level,
                f"live stream: injected fraud vs flagged; times to detect in stream time, which ran "
                f"{speedup:.0f}x faster than the simulated clock")
    return alerts


def _model_version(alerts: list[Any]) -> str:
    versions = sorted({a.model_version for a in alerts})
    return ",".join(versions) or "-"


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def backtest(run: Run, files: tuple[Path, Path] | None) -> Path | None:
    """Replay the generated traffic through ingest+scorer (no Kafka); print its table; the report."""
    if files is None:
        return None
    report_dir = run.out / "report"
    cmd = [sys.executable, "-m", "services.cli", "backtest", "--events", str(files[0]), "--truth", str(files[1]),
           "--out", str(report_dir), "--min-level", run.args.min_level, "--quiet"]
    say("\nbacktest: replaying the same traffic through ingest+scorer (no Kafka) for the report...")
    proc = subprocess.run(cmd, env=run.env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        say(f"backtest failed:\n{proc.stderr[-2000:]}")
        return None
    metrics_path = report_dir / "metrics.json"
    if metrics_path.exists():
        print_table(json.loads(metrics_path.read_text()), run.args.min_level,
                    "backtest of the same traffic at its true event times (times to detect in simulated time)")
    report = report_dir / "report.html"
    return report if report.exists() else None
