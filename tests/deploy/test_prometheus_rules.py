"""The alert rules: promtool validity and unit tests, and their ties to metrics, tests and runbook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import ROOT, RULE_TESTS_DIR, RULES_DIR, documented_metrics, metrics_in, run

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))


def _rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def test_rule_files_are_valid(promtool: str) -> None:
    proc = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    proc = run([promtool, "test", "rules", *map(str, TEST_FILES)], cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(TEST_FILES)


def test_rule_unit_tests_catch_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """Guards the guard: a changed expected annotation must fail promtool."""
    source = RULE_TESTS_DIR / "api_test.yml"
    broken = source.read_text().replace("the API is 20000 records behind", "the API is 20001 records behind")
    copy = tmp_path / "api_test.yml"
    copy.write_text(broken.replace("../rules/api.yml", str(RULES_DIR / "api.yml")))
    proc = run([promtool, "test", "rules", str(copy)])
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr


def test_issue_alerts_are_all_there() -> None:
    names = {rule["alert"] for rule in _alerts()}
    expected = {
        "FraudradarConsumerLagHigh", "FraudradarConsumerStalled", "FraudradarDlqRateHigh",
        "FraudradarDlqLimitTripped", "FraudradarAlertRateSpike", "FraudradarAlertRateCollapse",
        "FraudradarScoreDistributionShifted", "FraudradarApi5xxHigh", "FraudradarApiLatencyHigh",
        "FraudradarLookupBudgetExhausted", "FraudradarWebhookFailures", "FraudradarScorerRestoreSlow",
    }
    assert expected <= names


def test_every_alert_has_severity_runbook_and_summary() -> None:
    for rule in _alerts():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/runbook.md#{rule['alert'].lower()}", rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_every_alert_has_a_unit_test_that_expects_it_to_fire() -> None:
    fired: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    missing = {rule["alert"] for rule in _alerts()} - fired
    assert not missing, f"alerts without a firing unit test: {sorted(missing)}"


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    headings = {line.lstrip("#").strip() for line in runbook.splitlines() if line.startswith("## ")}
    missing = {rule["alert"] for rule in _alerts()} - headings
    assert not missing, f"docs/runbook.md lacks a '## <alert>' section for {sorted(missing)}"


def test_rules_use_only_documented_metrics() -> None:
    known = set(documented_metrics())
    for rule in _rules():
        unknown = metrics_in(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: not in docs/metrics.md: {unknown}"
