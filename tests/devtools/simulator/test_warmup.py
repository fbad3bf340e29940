"""Warm-up: normal life before the evaluated run, scored but not counted (the cold start apart)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from services.common.normalise import normalise_imei, normalise_number
from services.common.records import Alert, Reason, View, Window
from services.devtools.simulator.backtest import backtest_pseudonymizer, evaluate_from_of, run_backtest
from services.devtools.simulator.cli import main as simulate
from services.devtools.simulator.exceptions import SimulatorError
from services.devtools.simulator.generate import SimConfig
from services.devtools.simulator.generate import simulate as simulate_config
from services.devtools.simulator.timeline import HOUR_MS, parse_start
from tests.devtools.simulator.fake_engine import Output, RuleEngine, _iso

START = "2025-03-04T20:00:00+01:00"      # the warm-up is the day before: 08:00-20:00 local


@pytest.fixture(scope="module")
def warm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("warm-sim")
    assert simulate(["--subscribers", "1500", "--duration", "3h", "--warmup", "12h", "--seed", "11",
                     "--start", START, "--out", str(out), "--quiet"]) == 0
    return out


def _events(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _fraud(warm_dir: Path) -> list[dict[str, object]]:
    return [r for r in _events(warm_dir / "truth.jsonl") if r.get("label", "fraud") == "fraud"]


def test_the_warmup_is_normal_life_only_and_truth_lies_in_the_evaluated_run(warm_dir: Path) -> None:
    start_ms = parse_start(START)
    world = orjson.loads((warm_dir / "world.json").read_bytes())
    assert world["warmup_ms"] == 12 * HOUR_MS and world["duration_ms"] == 3 * HOUR_MS
    assert evaluate_from_of(warm_dir / "truth.jsonl") == start_ms
    events = _events(warm_dir / "events.jsonl")
    times = [parse_start(str(e["occurred_at"])) for e in events]
    assert min(times) < start_ms - 11 * HOUR_MS and max(times) < start_ms + 3 * HOUR_MS
    warm = [e for e, t in zip(events, times, strict=True) if t < start_ms]
    assert len(warm) > len(events) / 2        # 12 h of day-time life before 3 h of evening
    truth = _fraud(warm_dir)
    assert truth
    for row in truth:
        assert parse_start(str(row["start"])) >= start_ms and parse_start(str(row["end"])) <= start_ms + 3 * HOUR_MS
    # no fraud entity acts in the warm-up. A SIM-swap victim's number is the exception by design:
    # it is a normal subscriber until the swap (its truth window starts there)
    actors: set[str] = set()
    for e in warm:
        if e.get("direction", "mo") == "mo" and e.get("a_number"):
            actors.add(normalise_number(str(e["a_number"]), "NL", allow_alphanumeric=True).value)
        if e.get("imei"):
            actors.add(normalise_imei(str(e["imei"])))
    fraud = set()
    for row in truth:
        if row["scenario"] in ("sim_swap_takeover",):
            continue
        ident = str(row["identifier"])
        fraud.add(normalise_number(ident, "NL", allow_alphanumeric=True).value
                  if row["entity_type"] == "number" else normalise_imei(ident))
    assert fraud and not fraud & actors


def test_without_warmup_the_world_starts_at_the_evaluated_run() -> None:
    start_ms = parse_start(START)
    sim = simulate_config(SimConfig(subscribers=500, duration_ms=HOUR_MS, seed=2, start_ms=start_ms))
    assert int(sim.events.t.min()) >= start_ms
    with pytest.raises(SimulatorError, match="negative"):
        simulate_config(SimConfig(subscribers=500, duration_ms=HOUR_MS, seed=2, start_ms=start_ms, warmup_ms=-1))


@dataclass(frozen=True)
class _Policy:
    cooldown_ms: int = 24 * HOUR_MS

    @staticmethod
    def level_of(score: int) -> str:
        return "high" if score >= 70 else "none"


class ColdEngine(RuleEngine):
    """The test rules, plus a cold start: ``sticky`` numbers alert on their first view and stay at
    80 (their flag is still up later), ``brief`` numbers alert on their first view and drop to 0."""

    def __init__(self, pseudo: object, sticky: set[str], brief: set[str]) -> None:
        super().__init__(pseudo)  # type: ignore[arg-type]
        self.policy = _Policy()
        self.sticky, self.brief = sticky, brief
        self.cold: set[str] = set()

    def process(self, view: View) -> Output:
        out = super().process(view)
        if view.entity_type != "number" or view.entity not in self.sticky | self.brief:
            return out
        out.score = 80 if view.entity in self.sticky else 0
        if view.entity not in self.cold:
            self.cold.add(view.entity)
            out.alerts.append(Alert(
                alert_id=f"cold:{view.entity}", entity_type="number", entity=view.entity, level="high", score=80,
                reasons=[Reason("COLD_RULE", "score", 80, "lifetime", "rule", "test")], evidence={"score": 80.0},
                window=Window(_iso(view.occurred_ms), _iso(view.occurred_ms)), model_version=self.model_version,
                raised_at=_iso(view.occurred_ms)))
        return out


def _both_windows(warm_dir: Path, start_ms: int) -> list[str]:
    """Normal subscriber numbers sending in the warm-up and again in the evaluated run."""
    truth = {str(r["identifier"]) for r in _fraud(warm_dir)}
    before: set[str] = set()
    after: set[str] = set()
    for e in _events(warm_dir / "events.jsonl"):
        a = str(e.get("a_number") or "")
        if e.get("direction") != "mo" or not a.startswith("+316") or a in truth:
            continue
        (before if parse_start(str(e["occurred_at"])) < start_ms else after).add(a)
    return sorted(before & after)


def test_warmup_alerts_are_the_cold_start_and_not_in_the_evaluated_metrics(warm_dir: Path, tmp_path: Path) -> None:
    start_ms = parse_start(START)
    pseudo = backtest_pseudonymizer()
    numbers = _both_windows(warm_dir, start_ms)
    assert len(numbers) >= 4
    sticky = {pseudo("msisdn", n) for n in numbers[:2]}
    brief = {pseudo("msisdn", n) for n in numbers[2:4]}

    # evaluated window from world.json: the four cold alerts are the cold start
    out = tmp_path / "warm"
    evaluation = run_backtest(warm_dir / "events.jsonl", warm_dir / "truth.jsonl", out,
                              engine=ColdEngine(pseudo, sticky, brief), pseudonymizer=pseudo, quiet=True)
    metrics = evaluation.metrics
    assert "Cold start (warm-up, not in the metrics above)" in (out / "report.html").read_text()
    cold = metrics["cold_start"]
    assert isinstance(cold, dict)
    assert cold["evaluated_from_ms"] == start_ms and 11.5 < cold["warmup_hours"] <= 12
    assert cold["false_alarm_entities"] >= 4 and cold["false_alarms_by_type"]["number"] >= 4
    assert cold["false_alarm_reasons"]["COLD_RULE"] == 4
    # sticky numbers are still flagged in the evaluated window: counted there as false alarms;
    # the brief ones dropped below the alert level and are not
    assert cold["carried_over"] >= 2
    assert {("number", n) for n in sticky} <= evaluation.false_alarms
    assert not {("number", b) for b in brief} & evaluation.false_alarms
    cold_alerts = [orjson.loads(x) for x in (out / "cold_start_alerts.jsonl").read_bytes().splitlines()]
    assert {a["entity"] for a in cold_alerts if a["alert_id"].startswith("cold:")} == sticky | brief
    assert all(parse_start(a["raised_at"]) < start_ms for a in cold_alerts)
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    assert all(parse_start(a["raised_at"]) >= start_ms for a in alerts)

    # the same replay evaluated over everything: the warm-up's alerts count, so more false alarms
    whole = run_backtest(warm_dir / "events.jsonl", warm_dir / "truth.jsonl", tmp_path / "whole",
                         engine=ColdEngine(pseudo, sticky, brief), pseudonymizer=pseudo, quiet=True, report=False,
                         evaluate_from_ms=0)
    assert {("number", b) for b in brief} <= whole.false_alarms
    assert len(whole.false_alarms) > len(evaluation.false_alarms)
    overall, whole_overall = metrics["overall"], whole.metrics["overall"]
    assert isinstance(overall, dict) and isinstance(whole_overall, dict)
    assert overall["recall"] == whole_overall["recall"]        # no fraud in the warm-up to find or miss


def test_backtest_cli_takes_the_evaluated_start(warm_dir: Path, tmp_path: Path) -> None:
    from services.devtools.simulator.backtest import main

    assert main(["--events", str(warm_dir / "events.jsonl"), "--truth", str(warm_dir / "truth.jsonl"),
                 "--out", str(tmp_path / "bad"), "--evaluate-from", "yesterday", "--quiet"]) == 2
