"""``fraudradar backtest``: replay a raw-event file through ingest and the scorer, measure detection.

    fraudradar backtest --events D/events.jsonl --truth D/truth.jsonl --out R

The replay runs the same code as the services (``IngestPipeline`` → ``PartitionScorer``) in one
process, without Kafka. Event time drives every clock: the ingest time bounds are off (a
replay is history) and the scorer sees the events' own timestamps. The model and policy
versions the engine reports are written into the outputs.

Outputs in ``R``: ``metrics.json`` (see ``services.devtools.simulator.quality``), ``alerts.jsonl`` (every
alert raised, each with the truth ``scenario`` it hit or ``null``), ``report.html`` with PNG plots.

Pseudonyms: the key comes from ``FRAUDRADAR_PSEUDONYM_KEY[_FILE]`` when set; otherwise a fixed,
public backtest key is used so that runs are reproducible. Backtest outputs stay with the analyst,
like the raw events and the truth file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec
import orjson
from tqdm import tqdm

from services.common.normalise import IdentifierError, normalise_imei, normalise_number
from services.common.pseudonym import Key, Pseudonymizer
from services.common.records import LEVELS, Alert, Link, View
from services.devtools.simulator import catalog
from services.devtools.simulator.exceptions import SimulatorError
from services.devtools.simulator.quality import (
    PRE_START_LEAD_MS,
    AlertPoint,
    EntityKey,
    Evaluation,
    NegativeEntity,
    TruthEntity,
    evaluate,
    level_at_least,
)

BACKTEST_KEY = Key("backtest", hashlib.sha256(b"fraudradar-backtest-public-key").digest())


class EngineOutputLike(Protocol):
    @property
    def entity_type(self) -> str: ...
    @property
    def entity(self) -> str: ...
    @property
    def score(self) -> int: ...
    @property
    def alerts(self) -> Sequence[Alert]: ...


class Engine(Protocol):
    """What the backtest needs of the scorer (``services.scorer.partition.PartitionScorer``)."""

    @property
    def model_version(self) -> str: ...

    def process(self, view: View) -> EngineOutputLike | None: ...

    def apply_link(self, link: Link) -> EngineOutputLike: ...


def default_engine(pseudonymizer: Pseudonymizer, policy_path: Path | None, seed: int = 0) -> Engine:
    from services.scorer.partition import PartitionScorer

    engine: Engine = PartitionScorer.default(pseudonymizer, policy_path=policy_path, seed=seed)
    return engine


def backtest_pseudonymizer() -> Pseudonymizer:
    from services.common.pseudonym import load_key

    if os.environ.get("FRAUDRADAR_PSEUDONYM_KEY") or os.environ.get("FRAUDRADAR_PSEUDONYM_KEY_FILE"):
        return Pseudonymizer(load_key("FRAUDRADAR_PSEUDONYM_KEY", "FRAUDRADAR_PSEUDONYM_KEY_FILE", "pseudonym key"))
    return Pseudonymizer(BACKTEST_KEY)


def parse_time_ms(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    return int(moment.timestamp() * 1000)


def read_truth(path: Path, pseudonymizer: Pseudonymizer, region: str = "NL",
               ) -> tuple[list[TruthEntity], list[NegativeEntity]]:
    """Read ``truth.jsonl``: fraud entities and labelled hard negatives (``"label": "negative"``),
    each identifier mapped onto the pseudonym ingest gives it."""
    out: list[TruthEntity] = []
    negatives: list[NegativeEntity] = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise SimulatorError(f"cannot read truth file {path}: {exc.strerror}") from exc
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            row = orjson.loads(raw)
            entity_type, identifier = row["entity_type"], str(row["identifier"])
            if entity_type == "number":
                entity = pseudonymizer("msisdn", normalise_number(identifier, region, allow_alphanumeric=True).value)
            elif entity_type == "device":
                entity = pseudonymizer("imei", normalise_imei(identifier))
            else:
                raise ValueError(f"entity_type {entity_type!r} is not number or device")
            label = row.get("label", "fraud")
            if label == "negative":
                negatives.append(NegativeEntity(str(row["class"]), entity_type, entity))
                continue
            if label != "fraud":
                raise ValueError(f"label {label!r} is not fraud or negative")
            out.append(TruthEntity(str(row["scenario"]), entity_type, entity, parse_time_ms(row["start"]),
                                   parse_time_ms(row["end"]), str(row.get("instance") or "")))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IdentifierError) as exc:
            raise SimulatorError(f"{path}:{lineno}: bad truth line: {exc}") from exc
    return out, negatives


def load_truth(path: Path, pseudonymizer: Pseudonymizer, region: str = "NL") -> list[TruthEntity]:
    """The fraud entities of ``truth.jsonl`` (hard-negative labels skipped)."""
    return read_truth(path, pseudonymizer, region)[0]


@dataclass
class Replay:
    """What one pass over the events collects."""

    events: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    views: int = 0
    seconds: float = 0.0
    first_ms: int | None = None
    last_ms: int | None = None
    max_scores: dict[EntityKey, float] = field(default_factory=dict)
    normal_numbers: set[str] = field(default_factory=set)
    alerts: list[AlertPoint] = field(default_factory=list)
    alert_count: int = 0
    # truth entity -> (event time, recipient) of each SMS sent / call placed (victims before alert)
    contacts: dict[EntityKey, list[tuple[int, str]]] = field(default_factory=dict)
    # warm-up: views before ``evaluate_from_ms`` are scored (they fill the scorer's state) but
    # counted nowhere above; their alerts are the cold start, what a fresh deployment raises
    evaluate_from_ms: int | None = None
    warmup_views: int = 0
    warmup_first_ms: int | None = None
    cold_start: list[AlertPoint] = field(default_factory=list)
    # normal entities alerted in the warm-up whose flag is still up in the evaluated window (the
    # scorer raises one alert per episode, so without these a warm-up false alarm would vanish)
    carried_over: set[EntityKey] = field(default_factory=set)
    cold_flagged: dict[EntityKey, AlertPoint] = field(default_factory=dict)   # first at min_level or above
    warmup_normal_numbers: set[str] = field(default_factory=set)

    @property
    def duration_days(self) -> float:
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        return (self.last_ms - self.first_ms) / 86_400_000


def _lines(path: Path, quiet: bool) -> Iterator[bytes]:
    try:
        size = path.stat().st_size
        fh = path.open("rb")
    except OSError as exc:
        raise SimulatorError(f"cannot read events file {path}: {exc.strerror}") from exc
    with fh, tqdm(total=size, desc="backtest", unit="B", unit_scale=True, disable=quiet, file=sys.stderr) as bar:
        pending = 0
        for line in fh:
            pending += len(line)
            if pending > 1 << 20:
                bar.update(pending)
                pending = 0
            raw = line.rstrip(b"\r\n")
            if raw.strip():
                yield raw
        bar.update(pending)


def replay(events_path: Path, engine: Engine, pseudonymizer: Pseudonymizer, truth: list[TruthEntity], *,
           alerts_out: Path, region: str = "NL", quiet: bool = False, evaluate_from_ms: int | None = None,
           min_level: str = "high") -> Replay:
    from services.ingest.pipeline import IngestLimits, IngestPipeline
    from services.ingest.transform import Transformer

    pipeline = IngestPipeline(Transformer(pseudonymizer, None, region), IngestLimits())
    label: dict[EntityKey, str] = {}
    for t in truth:
        label.setdefault(t.key, t.scenario)
    truth_numbers = {t.entity for t in truth if t.entity_type == "number"}
    truth_keys = {t.key for t in truth}
    result = Replay(evaluate_from_ms=evaluate_from_ms)
    contacts = result.contacts
    level_of = getattr(getattr(engine, "policy", None), "level_of", None)
    started = time.perf_counter()
    cold_out = alerts_out.with_name("cold_start_alerts.jsonl")
    with alerts_out.open("wb") as alerts_fh, cold_out.open("wb") as cold_fh:
        for raw in _lines(events_path, quiet):
            result.events += 1
            ingested = pipeline.process(raw, now_ms=None)
            if ingested.reason is not None:
                result.rejected[ingested.reason] = result.rejected.get(ingested.reason, 0) + 1
                continue
            for view in ingested.views:
                if evaluate_from_ms is not None and view.occurred_ms < evaluate_from_ms:
                    result.warmup_views += 1
                    if result.warmup_first_ms is None or view.occurred_ms < result.warmup_first_ms:
                        result.warmup_first_ms = view.occurred_ms
                    if (view.entity_type == "number" and view.subscriber and view.number_kind == "e164"
                            and view.entity not in truth_numbers):
                        result.warmup_normal_numbers.add(view.entity)
                    _warm(result, engine, view, label, cold_fh=cold_fh, min_level=min_level)
                    continue
                result.views += 1
                if result.first_ms is None or view.occurred_ms < result.first_ms:
                    result.first_ms = view.occurred_ms
                if result.last_ms is None or view.occurred_ms > result.last_ms:
                    result.last_ms = view.occurred_ms
                if (view.entity_type == "number" and view.subscriber and view.number_kind == "e164"
                        and view.entity not in truth_numbers):
                    result.normal_numbers.add(view.entity)
                if view.role == "out" and view.peer is not None and (view.entity_type, view.entity) in truth_keys:
                    contacts.setdefault((view.entity_type, view.entity), []).append((view.occurred_ms, view.peer))
                output = engine.process(view)
                if output is None:
                    continue
                outputs = [output, *(engine.apply_link(link) for link in getattr(output, "links", ()))]
                for out in outputs:
                    _record(result, out, label, alerts_fh)
                    if result.cold_flagged and level_of is not None:
                        _carry_over(result, out, level_of(out.score), view.occurred_ms, min_level=min_level,
                                    truth_keys=truth_keys)
    result.seconds = time.perf_counter() - started
    return result


def _warm(result: Replay, engine: Engine, view: View, label: dict[EntityKey, str], *, cold_fh: IO[bytes],
          min_level: str) -> None:
    """Score a warm-up view: its alerts go to the cold start, nothing else is counted."""
    output = engine.process(view)
    if output is None:
        return
    # device -> number links: in the service they travel through fraudradar.links to the number's
    # scorer; here the one engine applies them right after the device view
    for out in [output, *(engine.apply_link(link) for link in getattr(output, "links", ()))]:
        for alert in out.alerts:
            point = AlertPoint(alert.entity_type, alert.entity, alert.level, parse_time_ms(alert.raised_at),
                               alert.campaign_id, tuple(r.code for r in alert.reasons))
            result.cold_start.append(point)
            if level_at_least(point.level, min_level):
                result.cold_flagged.setdefault(point.key, point)
            record: dict[str, Any] = msgspec.to_builtins(alert)
            record["scenario"] = label.get((alert.entity_type, alert.entity))
            cold_fh.write(orjson.dumps(record) + b"\n")


def _carry_over(result: Replay, output: EngineOutputLike, level: str, at_ms: int, *, min_level: str,
                truth_keys: set[EntityKey]) -> None:
    """A normal entity alerted in the warm-up and still at the alert level in the evaluated window
    is flagged there too (its episode carries on, so no new alert is raised): count it as an
    evaluated alert at the first evaluated moment its score is at ``min_level`` or above."""
    key = (output.entity_type, output.entity)
    if key in result.carried_over or key in truth_keys or not level_at_least(level, min_level):
        return
    warm = result.cold_flagged.get(key)
    if warm is None:
        return
    result.carried_over.add(key)
    result.alerts.append(AlertPoint(key[0], key[1], level, at_ms, warm.campaign_id, ("CARRIED_OVER", *warm.reasons)))


def _record(result: Replay, output: EngineOutputLike, label: dict[EntityKey, str], alerts_fh: IO[bytes]) -> None:
    key = (output.entity_type, output.entity)
    scores = result.max_scores
    if output.score > scores.get(key, -1):
        scores[key] = float(output.score)
    for alert in output.alerts:
        result.alert_count += 1
        akey = (alert.entity_type, alert.entity)
        # an alert's entity may not be the output's (a device's broadcast alerts the numbers on
        # it, ON_FLAGGED_DEVICE): its score is that entity's score too
        if alert.score > scores.get(akey, -1):
            scores[akey] = float(alert.score)
        result.alerts.append(AlertPoint(alert.entity_type, alert.entity, alert.level, parse_time_ms(alert.raised_at),
                                        alert.campaign_id, tuple(r.code for r in alert.reasons)))
        record: dict[str, Any] = msgspec.to_builtins(alert)
        record["scenario"] = label.get(akey)
        alerts_fh.write(orjson.dumps(record) + b"\n")


def _world_beside(truth_path: Path) -> dict[str, Any] | None:
    """``world.json`` written by ``fraudradar simulate`` next to the truth file, if any."""
    path = truth_path.parent / "world.json"
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _with_world_registry(truth_path: Path, out_dir: Path, policy_path: Path | None) -> Path | None:
    """The policy to score with: when ``fraudradar simulate`` wrote the world's sender-ID registry
    (``registry.csv``) next to the truth file and the policy names no registry of its own, a copy
    of the policy that names it (``OUT/policy.yaml``); else ``policy_path`` unchanged."""
    import yaml

    registry = truth_path.parent / "registry.csv"
    if not registry.is_file():
        return policy_path
    if policy_path is None:
        from importlib import resources

        text = resources.files("services.scorer").joinpath("policy.yaml").read_text()
    else:
        text = policy_path.read_text()
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or (doc.get("sender_registry") or {}).get("path"):
        return policy_path
    doc.setdefault("sender_registry", {})
    doc["sender_registry"] = {**(doc["sender_registry"] or {}), "path": str(registry.resolve())}
    out = out_dir / "policy.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _alert_cooldown_ms(engine: Engine) -> int:
    """The engine's alert cooldown (policy flags.cooldown): how long before its start an alert still counts."""
    cooldown = getattr(getattr(engine, "policy", None), "cooldown_ms", None)
    return int(cooldown) if isinstance(cooldown, int) else PRE_START_LEAD_MS


def evaluate_from_of(truth_path: Path) -> int | None:
    """Where the evaluated window starts for a world ``fraudradar simulate --warmup`` wrote:
    ``evaluated_from`` of the ``world.json`` beside the truth file when it had a warm-up, else
    ``None`` (everything is evaluated)."""
    world = _world_beside(truth_path)
    if not world or not world.get("warmup_ms") or not world.get("evaluated_from"):
        return None
    try:
        return parse_time_ms(str(world["evaluated_from"]))
    except ValueError as exc:
        raise SimulatorError(f"{truth_path.parent / 'world.json'}: bad evaluated_from: {exc}") from exc


def cold_start_metrics(result: Replay, truth: list[TruthEntity], negatives: list[NegativeEntity],
                       min_level: str) -> dict[str, Any]:
    """What the scorer raised in the warm-up, from empty state: a fresh deployment's first hours."""
    truth_keys = {t.key for t in truth}
    flagged = {a.key for a in result.cold_start if level_at_least(a.level, min_level)}
    false = flagged - truth_keys
    start = result.warmup_first_ms
    end = result.evaluate_from_ms
    days = (end - start) / 86_400_000 if start is not None and end is not None and end > start else 0.0
    normal = len(result.warmup_normal_numbers)
    by_type: dict[str, int] = {}
    for entity_type, _ in false:
        by_type[entity_type] = by_type.get(entity_type, 0) + 1
    by_reason: dict[str, int] = {}
    for a in result.cold_start:
        if a.key in false and level_at_least(a.level, min_level):
            for code in dict.fromkeys(a.reasons):
                by_reason[code] = by_reason.get(code, 0) + 1
    classes: dict[str, dict[str, int]] = {}
    for neg in negatives:
        row = classes.setdefault(neg.cls, {"entities": 0, "flagged": 0})
        row["entities"] += 1
        row["flagged"] += int((neg.entity_type, neg.entity) in false)
    return {
        "evaluated_from_ms": end, "warmup_hours": days * 24, "views": result.warmup_views,
        "alerts": len(result.cold_start), "false_alarm_entities": len(false),
        "false_alarms_by_type": dict(sorted(by_type.items())),
        "false_alarms_per_100k_per_day": (len(false) / normal * 100_000 / days) if normal and days else 0.0,
        "normal_numbers": normal,
        "false_alarm_reasons": dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        "hard_negatives_flagged": {cls: row for cls, row in sorted(classes.items()) if row["flagged"]},
        # of these, still flagged in the evaluated window and counted there as false alarms
        "carried_over": len(result.carried_over),
    }


def run_backtest(events_path: Path, truth_path: Path, out_dir: Path, *, engine: Engine | None = None,
                 pseudonymizer: Pseudonymizer | None = None, min_level: str = "high", region: str = "NL",
                 policy_path: Path | None = None, quiet: bool = False, report: bool = True,
                 evaluate_from_ms: int | None = None) -> Evaluation:
    """Replay and evaluate. ``evaluate_from_ms`` (default: from the world's ``world.json``, see
    ``evaluate_from_of``) splits the run: earlier views warm the scorer up and their alerts are
    reported as the cold start (``metrics.json`` ``cold_start``); every other metric counts the
    evaluated window only."""
    pseudo = pseudonymizer or backtest_pseudonymizer()
    truth, negatives = read_truth(truth_path, pseudo, region)
    if evaluate_from_ms is None:
        evaluate_from_ms = evaluate_from_of(truth_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = engine or default_engine(pseudo, _with_world_registry(truth_path, out_dir, policy_path))
    result = replay(events_path, engine, pseudo, truth, alerts_out=out_dir / "alerts.jsonl", region=region,
                    quiet=quiet, evaluate_from_ms=evaluate_from_ms, min_level=min_level)
    evaluation = evaluate(truth, result.alerts, result.max_scores, normal_numbers=len(result.normal_numbers),
                          duration_days=result.duration_days, events=result.events,
                          events_per_s=result.events / result.seconds if result.seconds > 0 else 0.0,
                          model_version=str(engine.model_version), min_level=min_level,
                          scenario_order=catalog.SCENARIOS, lead_ms=_alert_cooldown_ms(engine),
                          contacts=result.contacts, negatives=negatives)
    if evaluate_from_ms is not None:
        evaluation.metrics["cold_start"] = cold_start_metrics(result, truth, negatives, min_level)
    (out_dir / "metrics.json").write_bytes(orjson.dumps(evaluation.metrics, option=orjson.OPT_INDENT_2) + b"\n")
    if report:
        from services.devtools.simulator.report import RunInfo, write_report

        info = RunInfo(events_path=str(events_path), truth_path=str(truth_path), min_level=min_level,
                       model_version=str(engine.model_version),
                       policy_version=str(getattr(engine, "policy_version", "") or "(in model version)"),
                       key_id=pseudo.key_id, views=result.views, rejected=result.rejected,
                       alerts=result.alert_count, normal_numbers=len(result.normal_numbers),
                       duration_days=result.duration_days, seconds=result.seconds,
                       world=_world_beside(truth_path))
        write_report(out_dir, evaluation, truth=truth, alerts=result.alerts, max_scores=result.max_scores, info=info)
    return evaluation


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar backtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", required=True, type=Path, help="raw events, JSON lines in event-time order")
    parser.add_argument("--truth", required=True, type=Path, help="truth.jsonl from fraudradar simulate")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--min-level", default="high", choices=LEVELS[1:],
                        help="alerts at or above this level count as detections (default high)")
    parser.add_argument("--policy", type=Path, default=None, help="scorer policy file (default: the shipped one)")
    parser.add_argument("--region", default="NL", help="region of national numbers (default NL)")
    parser.add_argument("--evaluate-from", default=None, metavar="TIME",
                        help="RFC 3339 event time where the evaluated window starts; earlier events only warm the "
                             "scorer up (their alerts: the cold start). Default: evaluated_from of the world.json "
                             "beside the truth file when it was simulated with --warmup, else the whole run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        evaluate_from = parse_time_ms(args.evaluate_from) if args.evaluate_from else None
    except ValueError as exc:
        print(f"fraudradar backtest: --evaluate-from {args.evaluate_from!r}: {exc}", file=sys.stderr)
        return 2
    try:
        evaluation = run_backtest(args.events, args.truth, args.out, min_level=args.min_level, region=args.region,
                                  policy_path=args.policy, quiet=args.quiet, evaluate_from_ms=evaluate_from)
    except SimulatorError as exc:
        print(f"fraudradar backtest: {exc}", file=sys.stderr)
        return 2
    overall = evaluation.metrics["overall"]
    assert isinstance(overall, dict)
    print(f"precision {overall['precision']:.3f}  recall {overall['recall']:.3f}  "
          f"false alarms/100k/day {overall['false_alarms_per_100k_per_day']:.1f}  -> {args.out}", file=sys.stderr)
    cold = evaluation.metrics.get("cold_start")
    if isinstance(cold, dict):
        print(f"cold start ({cold['warmup_hours']:.1f} h warm-up, not in the metrics above): "
              f"{cold['false_alarm_entities']} false-alarm entities, "
              f"{cold['false_alarms_per_100k_per_day']:.1f}/100k/day", file=sys.stderr)
    return 0
