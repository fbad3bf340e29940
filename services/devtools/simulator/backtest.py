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
           alerts_out: Path, region: str = "NL", quiet: bool = False) -> Replay:
    from services.ingest.pipeline import IngestLimits, IngestPipeline
    from services.ingest.transform import Transformer

    pipeline = IngestPipeline(Transformer(pseudonymizer, None, region), IngestLimits())
    label: dict[EntityKey, str] = {}
    for t in truth:
        label.setdefault(t.key, t.scenario)
    truth_numbers = {t.entity for t in truth if t.entity_type == "number"}
    truth_keys = {t.key for t in truth}
    result = Replay()
    contacts = result.contacts
    started = time.perf_counter()
    with alerts_out.open("wb") as alerts_fh:
        for raw in _lines(events_path, quiet):
            result.events += 1
            ingested = pipeline.process(raw, now_ms=None)
            if ingested.reason is not None:
                result.rejected[ingested.reason] = result.rejected.get(ingested.reason, 0) + 1
                continue
            for view in ingested.views:
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
                _record(result, output, label, alerts_fh)
                # device -> number links: in the service they travel through fraudradar.links to
                # the number's scorer; here the one engine applies them right after the device view
                for link in getattr(output, "links", ()):
                    _record(result, engine.apply_link(link), label, alerts_fh)
    result.seconds = time.perf_counter() - started
    return result


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


def run_backtest(events_path: Path, truth_path: Path, out_dir: Path, *, engine: Engine | None = None,
                 pseudonymizer: Pseudonymizer | None = None, min_level: str = "high", region: str = "NL",
                 policy_path: Path | None = None, quiet: bool = False, report: bool = True) -> Evaluation:
    pseudo = pseudonymizer or backtest_pseudonymizer()
    truth, negatives = read_truth(truth_path, pseudo, region)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = engine or default_engine(pseudo, _with_world_registry(truth_path, out_dir, policy_path))
    result = replay(events_path, engine, pseudo, truth, alerts_out=out_dir / "alerts.jsonl", region=region,
                    quiet=quiet)
    evaluation = evaluate(truth, result.alerts, result.max_scores, normal_numbers=len(result.normal_numbers),
                          duration_days=result.duration_days, events=result.events,
                          events_per_s=result.events / result.seconds if result.seconds > 0 else 0.0,
                          model_version=str(engine.model_version), min_level=min_level,
                          scenario_order=catalog.SCENARIOS, lead_ms=_alert_cooldown_ms(engine),
                          contacts=result.contacts, negatives=negatives)
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        evaluation = run_backtest(args.events, args.truth, args.out, min_level=args.min_level, region=args.region,
                                  policy_path=args.policy, quiet=args.quiet)
    except SimulatorError as exc:
        print(f"fraudradar backtest: {exc}", file=sys.stderr)
        return 2
    overall = evaluation.metrics["overall"]
    assert isinstance(overall, dict)
    print(f"precision {overall['precision']:.3f}  recall {overall['recall']:.3f}  "
          f"false alarms/100k/day {overall['false_alarms_per_100k_per_day']:.1f}  -> {args.out}", file=sys.stderr)
    return 0
