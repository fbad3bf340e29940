"""The backtest end to end on a small simulation, with a test-only rule engine as the scorer."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from services.devtools.simulator import catalog
from services.devtools.simulator.backtest import backtest_pseudonymizer, load_truth, run_backtest
from services.devtools.simulator.cli import main as simulate
from services.devtools.simulator.exceptions import SimulatorError
from tests.devtools.simulator.fake_engine import RuleEngine


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bt-sim")
    assert simulate(["--subscribers", "1500", "--duration", "4h", "--seed", "3", "--out", str(out), "--quiet"]) == 0
    return out


def test_backtest_writes_documented_files(sim_dir: Path, tmp_path: Path) -> None:
    pseudo = backtest_pseudonymizer()
    out = tmp_path / "report"
    run_backtest(sim_dir / "events.jsonl", sim_dir / "truth.jsonl", out, engine=RuleEngine(pseudo),
                 pseudonymizer=pseudo, quiet=True)
    metrics = orjson.loads((out / "metrics.json").read_bytes())
    assert list(metrics) == ["events", "events_per_s", "model_version", "scenarios", "overall", "campaigns",
                             "hard_negatives"]
    assert metrics["model_version"] == "test-rules-1"
    assert metrics["events"] == len((sim_dir / "events.jsonl").read_bytes().splitlines())
    assert set(metrics["scenarios"]) == set(catalog.SCENARIOS)
    for values in metrics["scenarios"].values():
        assert list(values) == ["entities", "detected", "recall", "precision", "ttd_median_s", "ttd_p90_s",
                                "victims_before_alert_median", "victims_before_alert_p90"]
    assert list(metrics["overall"]) == ["precision", "recall", "false_alarms_per_100k_per_day", "roc_auc", "pr_auc"]
    # the rule engine finds the spoofed bank callers (DNO rule): the plumbing maps truth to pseudonyms
    assert metrics["scenarios"]["spoofed_bank_caller"]["detected"] >= 1
    alerts = [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    assert alerts and all("scenario" in a and "alert_id" in a for a in alerts)
    assert any(a["scenario"] == "spoofed_bank_caller" for a in alerts)
    html = (out / "report.html").read_text()
    for png in ("scores.png", "ttd.png", "alerts_over_time.png", "pr_curve.png"):
        assert (out / png).stat().st_size > 1000 and png in html
    assert "Campaign grouping" in html and "pair_recall" in html
    # the report says what the data is (a simulated world, its seed and parameters) and where real data goes
    assert "What this data is" in html and "--world random --seed 3" in html and "evaluate-table" in html
    assert "Hard negatives" in html and "victims before alert, median" in html
    assert "time to detect, median (s)" in html and "time to detect (min" not in html
    # no plaintext number in the alerts
    assert b"+316" not in (out / "alerts.jsonl").read_bytes()


def test_truth_maps_national_and_imeisv_onto_the_same_pseudonyms(tmp_path: Path) -> None:
    pseudo = backtest_pseudonymizer()
    truth = tmp_path / "truth.jsonl"
    truth.write_text(
        '{"scenario":"wangiri","entity_type":"number","identifier":"0612345678",'
        '"start":"2025-03-04T08:00:00+01:00","end":"2025-03-04T09:00:00Z"}\n'
        '{"scenario":"sim_box","entity_type":"device","identifier":"3539111011647520",'
        '"start":"2025-03-04T08:00:00Z","end":"2025-03-04T09:00:00Z","instance":"sim_box#2"}\n')
    rows = load_truth(truth, pseudo)
    assert (rows[0].instance, rows[1].instance) == ("", "sim_box#2")   # the instance is optional
    assert rows[0].entity == pseudo("msisdn", "+31612345678")
    assert rows[1].entity == pseudo("imei", "35391110116475")
    assert rows[0].start_ms == rows[1].start_ms - 3_600_000
    truth.write_text('{"scenario":"x","entity_type":"cell","identifier":"1","start":"2025-03-04T08:00:00Z",'
                     '"end":"2025-03-04T09:00:00Z"}\n')
    with pytest.raises(SimulatorError, match=r"truth\.jsonl:1"):
        load_truth(truth, pseudo)


def test_cli_with_the_real_scorer(sim_dir: Path, tmp_path: Path) -> None:
    """``fraudradar backtest`` end to end through the shipped scorer (a broken engine import fails)."""
    from services.devtools.simulator.backtest import main

    out = tmp_path / "real"
    assert main(["--events", str(sim_dir / "events.jsonl"), "--truth", str(sim_dir / "truth.jsonl"),
                 "--out", str(out), "--quiet"]) == 0
    metrics = orjson.loads((out / "metrics.json").read_bytes())
    assert list(metrics) == ["events", "events_per_s", "model_version", "scenarios", "overall", "campaigns",
                             "hard_negatives"]
    assert metrics["model_version"]
    # the simulator labels instances, so the campaign grouping is measured
    assert set(metrics["campaigns"]) == {"instances", "pair_recall", "pair_precision", "campaigns_per_instance"}
    for name in ("report.html", "alerts.jsonl", "scores.png", "ttd.png", "alerts_over_time.png", "pr_curve.png"):
        assert (out / name).exists()


def test_the_pre_start_lead_is_the_scorers_alert_cooldown(tmp_path: Path) -> None:
    from services.devtools.simulator.backtest import _alert_cooldown_ms, default_engine
    from services.devtools.simulator.quality import PRE_START_LEAD_MS

    pseudo = backtest_pseudonymizer()
    assert _alert_cooldown_ms(default_engine(pseudo, None)) == 24 * 3_600_000 == PRE_START_LEAD_MS
    policy = tmp_path / "policy.yaml"
    packaged = (Path(__file__).resolve().parents[3] / "services/scorer/policy.yaml").read_text()
    assert "  cooldown: 24h " in packaged
    policy.write_text(packaged.replace("  cooldown: 24h ", "  cooldown: 6h "))
    assert _alert_cooldown_ms(default_engine(pseudo, policy)) == 6 * 3_600_000
    assert _alert_cooldown_ms(RuleEngine(pseudo)) == PRE_START_LEAD_MS    # an engine without a policy
