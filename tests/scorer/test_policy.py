"""The policy file: level boundaries, every load error (``PolicyError``), durations, and the rule
points the scorer derives from it. Unit tests: no broker."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.pseudonym import Key, Pseudonymizer
from services.scorer.exceptions import PolicyError
from services.scorer.policy import Policy, Rule, duration_ms
from services.scorer.scoring import at_least, evaluate_rules, fuse, model_points, rule_points, window_of

PACKAGED = Path(__file__).resolve().parents[2] / "services" / "scorer" / "policy.yaml"
PSEUDO = Pseudonymizer(Key("t", b"t" * 32))


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _packaged() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(PACKAGED.read_text())
    return doc


def _load(tmp_path: Path, doc: dict[str, Any]) -> Policy:
    return Policy.load(PSEUDO, _write(tmp_path, doc))


# --- levels -----------------------------------------------------------------------------------

def test_level_of_at_and_around_every_boundary() -> None:
    policy = Policy.load(PSEUDO)
    assert (policy.levels.low, policy.levels.medium, policy.levels.high, policy.levels.critical) == (25, 50, 70, 85)
    expected = {0: "none", 24: "none", 25: "low", 49: "low", 50: "medium", 69: "medium", 70: "high",
                84: "high", 85: "critical", 100: "critical"}
    assert {score: policy.level_of(score) for score in expected} == expected


def test_level_of_follows_the_files_levels(tmp_path: Path) -> None:
    doc = _packaged()
    doc["levels"] = {"low": 10, "medium": 20, "high": 30, "critical": 40}
    policy = _load(tmp_path, doc)
    assert [policy.level_of(s) for s in (9, 10, 19, 20, 29, 30, 39, 40)] == [
        "none", "low", "low", "medium", "medium", "high", "high", "critical"]
    assert policy.level_floor == {"none": 0, "low": 10, "medium": 20, "high": 30, "critical": 40}


# --- load errors ------------------------------------------------------------------------------

def test_packaged_policy_loads_with_its_lists_pseudonymised() -> None:
    policy = Policy.load(PSEUDO)
    doc = _packaged()
    assert policy.version == str(doc["version"])
    assert policy.alert_level == doc["alert_level"]
    assert len(policy.do_not_originate) == len(doc["do_not_originate"])
    assert PSEUDO("msisdn", doc["do_not_originate"][0]) in policy.do_not_originate
    assert all("+" not in p and len(p) == 32 for p in policy.do_not_originate)
    assert policy.ttl_ms == 14 * 86_400_000 and policy.grace_ms == 300_000 and policy.sweep_every_ms == 900_000
    assert policy.cooldown_ms == 86_400_000 and policy.rescore_after_ms == 600_000
    assert policy.flag_ttl_ms == {"low": 6 * 3_600_000, "medium": 24 * 3_600_000, "high": 72 * 3_600_000,
                                  "critical": 168 * 3_600_000}


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        Policy.load(PSEUDO, tmp_path / "absent.yaml")


def test_yaml_syntax_error_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: [unclosed\n")
    with pytest.raises(PolicyError, match="invalid policy file"):
        Policy.load(PSEUDO, path)


def _broken(mutate: Any) -> dict[str, Any]:
    doc = _packaged()
    mutate(doc)
    return doc


INVALID = {
    "unknown key": lambda d: d.update(surprise=1),
    "no version": lambda d: d.pop("version"),
    "no rules": lambda d: d.pop("rules"),
    "no flags": lambda d: d.pop("flags"),
    "bad rule code": lambda d: d["rules"]["number"][0].update(code="lower_case"),
    "points above 100": lambda d: d["rules"]["number"][0].update(points=101, max_points=101),
    "negative points": lambda d: d["rules"]["number"][0].update(points=-1),
    "empty condition": lambda d: d["rules"]["number"][0].update(when={}),
    "saturate 1": lambda d: d["rules"]["number"][0].update(saturate=1.0),
    "unknown entity type": lambda d: d["rules"].update(cell=[]),
    "alert level low": lambda d: d.update(alert_level="low"),
    "unknown detector": lambda d: d["models"].update(detectors=["magic"]),
    "learn_every 0": lambda d: d["models"].update(learn_every=0),
    "tail_start 1": lambda d: d["models"].update(tail_start=1.0),
    "rescore_growth below 1": lambda d: d["models"].update(rescore_growth=0.9),
    "damping above 1": lambda d: d["models"].update(feedback_damping=1.5),
    "link level low": lambda d: d["links"].update(min_device_level="low"),
    "not a mapping": lambda d: (d.clear()),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_every_schema_violation_is_a_policy_error(tmp_path: Path, case: str) -> None:
    with pytest.raises(PolicyError, match="invalid policy file"):
        _load(tmp_path, _broken(INVALID[case]))


@pytest.mark.parametrize("entity_type", ["number", "device"])
def test_max_points_below_points_is_refused_for_every_entity_type(tmp_path: Path, entity_type: str) -> None:
    doc = _packaged()
    rule = doc["rules"][entity_type][-1]
    rule.update(points=50, max_points=49)
    with pytest.raises(PolicyError, match=rf"rule {entity_type}/{rule['code']}: max_points below points"):
        _load(tmp_path, doc)
    rule.update(max_points=50)                        # equal is fine: a flat rule
    _load(tmp_path, doc)


def test_a_rule_on_an_unknown_feature_is_refused_with_every_unknown_name(tmp_path: Path) -> None:
    doc = _packaged()
    rule = doc["rules"]["device"][0]
    rule["when"] = {"zz_typo": 1.0, "sms_5m_typo": 2.0}
    expected = (f"rule device/{rule['code']}: no such device feature sms_5m_typo, zz_typo "
                "(see services/scorer/catalogue.py)")
    with pytest.raises(PolicyError) as caught:
        _load(tmp_path, doc)
    assert str(caught.value) == expected


def test_a_models_evidence_group_no_rule_has_is_refused(tmp_path: Path) -> None:
    """A misspelt ``models.evidence`` would put the model in a group of its own, and its points
    would fuse with the spread rules' again: refused, naming the groups the rules have."""
    doc = _packaged()
    assert doc["models"]["evidence"] == "spread"
    doc["models"]["evidence"] = "spred"
    refused = r"models.evidence: no rule has the evidence group 'spred' \(groups: .*spread"
    with pytest.raises(PolicyError, match=refused):
        _load(tmp_path, doc)
    doc["models"]["evidence"] = None                  # no grouping is a choice, not a typo
    _load(tmp_path, doc)


@pytest.mark.parametrize("field", ["protected_categories", "code_categories"])
def test_an_unknown_registry_category_is_refused_with_every_unknown_name(tmp_path: Path, field: str) -> None:
    doc = _packaged()
    doc["sender_registry"][field] = ["bank", "govt", "banks"]
    with pytest.raises(PolicyError) as caught:
        _load(tmp_path, doc)
    assert str(caught.value) == f"sender_registry.{field}: unknown category banks, govt"


REGISTRY_HEADER = "sender_id,owner,category,aggregators\n"


def test_the_policy_files_registry_is_pseudonymised_with_the_files_region(tmp_path: Path) -> None:
    (tmp_path / "senders.csv").write_text(REGISTRY_HEADER + "MyBank,My Bank,bank,\n06 12345678,Parcels,parcel,\n"
                                          "1234,Codes,otp,\n")
    doc = _packaged()
    doc["sender_registry"]["path"] = "senders.csv"          # relative to the policy file
    policy = _load(tmp_path, doc)
    assert policy.senders.category == {PSEUDO("msisdn", "MyBank"): "bank", PSEUDO("msisdn", "1234"): "otp",
                                       PSEUDO("msisdn", "+31612345678"): "parcel"}
    assert policy.senders.protected == frozenset({PSEUDO("msisdn", "MyBank")})
    assert policy.code_senders == frozenset({PSEUDO("msisdn", "MyBank"), PSEUDO("msisdn", "1234")})
    doc["region"] = "BE"                                    # a national sender number follows the file's region
    assert PSEUDO("msisdn", "+32612345678") in _load(tmp_path, doc).senders.category


def test_an_unusable_registry_is_a_policy_error_naming_the_problem(tmp_path: Path) -> None:
    doc = _packaged()
    doc["sender_registry"]["path"] = "absent.csv"
    with pytest.raises(PolicyError, match=r"^cannot read sender registry .*absent\.csv: "):
        _load(tmp_path, doc)
    (tmp_path / "senders.csv").write_text(REGISTRY_HEADER + "+ABC,Spoofer,bank,\n")    # a row ingest would refuse
    doc["sender_registry"]["path"] = "senders.csv"
    with pytest.raises(PolicyError) as caught:
        _load(tmp_path, doc)
    assert str(caught.value) == "sender_id '+ABC' is refused by ingest's normalisation"


@pytest.mark.parametrize("entry", ["+1", "not a number", "+3161234567890123"])
def test_a_list_entry_that_is_not_a_number_is_a_policy_error(tmp_path: Path, entry: str) -> None:
    doc = _packaged()
    doc["do_not_originate"] = [entry]
    with pytest.raises(PolicyError, match="policy list entry is not a valid number or sender"):
        _load(tmp_path, doc)


def test_an_alphanumeric_sender_is_not_a_do_not_originate_number(tmp_path: Path) -> None:
    doc = _packaged()
    doc["do_not_originate"] = ["MyBank"]
    with pytest.raises(PolicyError, match="not a valid number"):
        _load(tmp_path, doc)


def test_national_numbers_use_the_files_region(tmp_path: Path) -> None:
    doc = _packaged()
    doc["do_not_originate"] = ["0612345678"]
    assert PSEUDO("msisdn", "+31612345678") in _load(tmp_path, doc).do_not_originate
    doc["region"] = "BE"
    assert PSEUDO("msisdn", "+32612345678") in _load(tmp_path, doc).do_not_originate


def test_modem_tacs_keep_only_digit_entries(tmp_path: Path) -> None:
    doc = _packaged()
    doc["modem_tacs"] = ["35391110", "abc", "01234567"]
    assert _load(tmp_path, doc).modem_tacs == frozenset({35391110, 1234567})


def test_a_bad_duration_is_a_policy_error(tmp_path: Path) -> None:
    doc = _packaged()
    doc["state"]["ttl"] = "14 days"
    with pytest.raises(PolicyError, match=r"not a duration: '14 days'"):
        _load(tmp_path, doc)


@pytest.mark.parametrize(("text", "ms"), [("250ms", 250), ("30s", 30_000), ("15m", 900_000), ("24h", 86_400_000),
                                          ("14d", 14 * 86_400_000), ("1.5s", 1500), (" 2m ", 120_000),
                                          (90, 90_000), (0.5, 500)])
def test_durations(text: str | int | float, ms: int) -> None:
    assert duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "15", "m15", "15x", "-5m", "15 m", "1e3s"])
def test_not_a_duration(text: str) -> None:
    with pytest.raises(PolicyError, match="not a duration"):
        duration_ms(text)


# --- rule points, fusion, model points ---------------------------------------------------------

def test_rule_points_at_the_threshold_and_growing_to_max_points() -> None:
    rule = Rule(code="RR", label="x", when={"a_1h": 10.0, "b": 1.0}, points=40, max_points=60, saturate=4.0)
    assert rule_points(rule, {"a_1h": 9.9, "b": 5.0}) == 0.0
    assert rule_points(rule, {"a_1h": 50.0}) == 0.0                         # every condition must hold
    assert rule_points(rule, {"a_1h": 10.0, "b": 1.0}) == pytest.approx(40.0)
    assert rule_points(rule, {"a_1h": 20.0, "b": 1.0}) == pytest.approx(40 + 20 * math.log(2) / math.log(4))
    assert rule_points(rule, {"a_1h": 40.0, "b": 1.0}) == pytest.approx(60.0)
    assert rule_points(rule, {"a_1h": 400.0, "b": 1.0}) == pytest.approx(60.0)
    # float32 rounding of a decayed count just below the threshold still fires
    assert rule_points(rule, {"a_1h": 10.0 * (1 - 1e-7), "b": 0.9999999}) == pytest.approx(40.0)
    assert at_least(10.0) == pytest.approx(10.0 - 1e-5) and at_least(0.25) == pytest.approx(0.25 - 1e-6)


def test_flat_rule_and_zero_threshold() -> None:
    flat = Rule(code="FF", label="x", when={"a": 2.0}, points=30, max_points=30)
    assert rule_points(flat, {"a": 100.0}) == 30.0
    zero = Rule(code="ZZ", label="x", when={"a": 0.0}, points=20, max_points=50)
    assert rule_points(zero, {}) == pytest.approx(20.0)          # a zero threshold has no ratio: points
    assert rule_points(zero, {"a": 3.0}) == pytest.approx(20.0)


def test_fuse_is_a_noisy_or() -> None:
    assert fuse([]) == 0.0
    assert fuse([50.0]) == pytest.approx(50.0)
    assert fuse([50.0, 50.0]) == pytest.approx(75.0)
    assert fuse([0.0, -5.0, 40.0]) == pytest.approx(40.0)
    assert fuse([150.0, 10.0]) == pytest.approx(100.0)


def test_windows_of_feature_names() -> None:
    assert [window_of(f) for f in ("sms_5m", "calls_1h", "recipients_24h", "imei_count")] == [
        "5m", "1h", "24h", "lifetime"]


def test_model_points_per_decade_capped() -> None:
    policy = Policy.load(PSEUDO)          # tail_start 1e-2, 15 at start, 15 per decade, max 60
    assert model_points(policy, 0.02) == 0.0
    assert model_points(policy, 1e-2) == pytest.approx(15.0)
    assert model_points(policy, 1e-3) == pytest.approx(30.0)
    assert model_points(policy, 1e-4) == pytest.approx(45.0)
    assert model_points(policy, 1e-9) == pytest.approx(60.0)
    assert model_points(policy, 0.0) == pytest.approx(60.0)


def test_evaluate_rules_reasons() -> None:
    rules = [Rule(code="SMS_BURST", label="SMS", when={"sms_5m": 50.0}, points=40, max_points=60),
             Rule(code="NIGHT", label="night share", when={"night_share": 0.5}, points=20, max_points=20)]
    features = {"sms_5m": 100.0, "night_share": 0.75}
    fired = evaluate_rules(rules, features, {"sms_5m": 1e-4})
    assert [r.code for _, r in fired] == ["SMS_BURST", "NIGHT"]
    (p1, r1), (p2, r2) = fired
    assert p1 == pytest.approx(rule_points(rules[0], features)) and p2 == 20
    assert (r1.feature, r1.value, r1.window) == ("sms_5m", 100.0, "5m")
    assert r1.rarity != "rule" and r1.text.startswith("SMS_BURST: 100 SMS in 5m, ")
    assert (r2.window, r2.rarity, r2.text) == ("lifetime", "rule", "NIGHT: 0.75 night share, rule")
    assert evaluate_rules(rules, {"sms_5m": 1.0}, None) == []
    assert [r.code for _, r in evaluate_rules(rules, features, None, matched=[1])] == ["NIGHT"]


def test_model_reason_names_the_most_unusual_feature() -> None:
    from services.scorer.scoring import model_reason

    reason = model_reason("hst", 1e-4, {"sms_1h": 1e-3, "calls_24h": 1e-5}, {"sms_1h": 3.25, "calls_24h": 140.0})
    assert (reason.code, reason.feature, reason.value, reason.window, reason.rarity) == (
        "MODEL_ANOMALY", "calls_24h", 140.0, "24h", "model p99.99")
    assert reason.text == ("MODEL_ANOMALY (hst): unusual traffic, most of all calls_24h=140, model p99.99")
    by_value = model_reason("ecod", 0.5, {}, {"sms_5m": 2.5, "calls_1h": 1.0})
    assert (by_value.feature, by_value.value, by_value.window, by_value.rarity) == ("sms_5m", 2.5, "5m", "model p50")
    assert by_value.text == "MODEL_ANOMALY (ecod): unusual traffic, most of all sms_5m=2.50, model p50"
    nothing = model_reason("hst", 0.5, {}, {})
    assert (nothing.feature, nothing.value, nothing.window) == ("none", 0.0, "lifetime")


def test_burst_reason_names_the_channel_and_its_window() -> None:
    from models import PoissonBurst
    from services.scorer.scoring import burst_reason

    model = PoissonBurst([("sms", "sms_5m", "sms_1h", "sms_24h"), ("calls", None, "calls_1h", "calls_24h")])
    for _ in range(300):
        model.learn_one({"sms_5m": 0.1, "sms_1h": 1.0, "sms_24h": 24.0, "calls_1h": 1.0, "calls_24h": 24.0,
                         "observed_h": 24.0})
    fast = burst_reason(model, 1e-4, {"sms_5m": 30.0, "sms_1h": 30.0, "sms_24h": 53.0, "observed_h": 24.0})
    assert (fast.code, fast.feature, fast.value, fast.window, fast.rarity) == (
        "MODEL_ANOMALY", "sms_5m", 30.0, "5m", "model p99.99")
    assert fast.text == ("MODEL_ANOMALY (burst): sms jumped to 30 in 5m, far above this entity's own earlier rate,"
                         " model p99.99")
    # 5-minute count x 12 not above the hour: the hour names it
    slow = burst_reason(model, 1e-4, {"sms_5m": 0.5, "sms_1h": 30.0, "sms_24h": 53.0, "observed_h": 24.0})
    assert (slow.feature, slow.value, slow.window) == ("sms_1h", 30.0, "1h")
    calls = burst_reason(model, 1e-4, {"calls_1h": 40.0, "calls_24h": 60.0, "sms_1h": 1.0, "sms_24h": 24.0,
                                       "observed_h": 24.0})
    assert (calls.feature, calls.window) == ("calls_1h", "1h") and "calls jumped to 40 in 1h" in calls.text
    quiet = burst_reason(model, 0.5, {"observed_h": 24.0})
    assert (quiet.code, quiet.feature, quiet.value, quiet.window, quiet.rarity) == (
        "MODEL_ANOMALY", "burst", 0.0, "1h", "model p50")
    assert quiet.text == "MODEL_ANOMALY (burst): unusual rates, model p50"


def test_model_reason_picks_by_tail_then_by_value_not_by_name() -> None:
    from services.scorer.scoring import model_reason

    # the rarest feature has the later name, the largest value the earlier one: the choice is by
    # tail (then value), never by the feature's name
    rarest = model_reason("hst", 1e-3, {"calls_1h": 1e-3, "sms_24h": 1e-5}, {"calls_1h": 9.0, "sms_24h": 2.34567})
    assert (rarest.feature, rarest.value, rarest.window) == ("sms_24h", 2.346, "24h")
    largest = model_reason("ecod", 1e-3, {}, {"calls_1h": 2.5, "sms_5m": 1.0})
    assert (largest.feature, largest.value, largest.window) == ("calls_1h", 2.5, "1h")
    assert largest.text == "MODEL_ANOMALY (ecod): unusual traffic, most of all calls_1h=2.50, model p99.9"


def test_model_rare_reasons_without_contributions_name_the_model() -> None:
    from services.common.records import Reason
    from services.scorer.scoring import model_rare_reasons

    reasons = model_rare_reasons("hst", 0.123456, 0.1, 1e-3, contributions={}, features={"sms_5m": 40.0})
    assert reasons == [Reason(
        code="MODEL_RARE", feature="model", value=0.1235, window="lifetime", rarity="model p99.9",
        text="MODEL_RARE (hst): rarer among normal traffic than the false-alarm budget allows "
             "(score 0.123 >= cut 0.1), model p99.9")]


def test_model_rare_reasons_name_the_top_features_with_their_share_of_the_evidence() -> None:
    from services.common.records import Reason
    from services.scorer.scoring import model_rare_reasons

    # zz_1h and calls_24h tie (the tie goes by name, not by the detector's order); night_share is
    # fourth (left out: top 3); zz_1h is not among the features (value 0); shares of the total 5.5
    contributions = {"sms_5m": 3.0, "zz_1h": 1.0, "calls_24h": 1.0, "night_share": 0.5}
    features = {"sms_5m": 12.34567, "calls_24h": 2.0, "night_share": 0.9}
    reasons = model_rare_reasons("ecod", 7.5, 6.25, 1e-3, contributions=contributions, features=features)
    assert reasons == [
        Reason(code="MODEL_RARE", feature="sms_5m", value=12.346, window="5m", rarity="model p99.9",
               text="MODEL_RARE (ecod): rarer among normal traffic than the false-alarm budget allows "
                    "(score 7.5 >= cut 6.25, model p99.9); sms_5m=12 made it rare (55% of the model's evidence)"),
        Reason(code="MODEL_RARE", feature="calls_24h", value=2.0, window="24h", rarity="model p99.9",
               text="MODEL_RARE: calls_24h=2 made it rare (18% of the model's evidence)"),
        Reason(code="MODEL_RARE", feature="zz_1h", value=0.0, window="1h", rarity="model p99.9",
               text="MODEL_RARE: zz_1h=0 made it rare (18% of the model's evidence)"),
    ]
    assert [r.feature for r in model_rare_reasons("ecod", 7.5, 6.25, 1e-3, contributions=contributions,
                                                  features=features, top=1)] == ["sms_5m"]


def test_burst_reason_picks_the_window_and_the_channel_at_their_edges() -> None:
    from models import PoissonBurst
    from services.scorer.scoring import burst_reason

    model = PoissonBurst([("sms", "sms_5m", "sms_1h", "sms_24h"), ("calls", None, "calls_1h", "calls_24h")])
    for _ in range(300):
        model.learn_one({"sms_5m": 0.1, "sms_1h": 1.0, "sms_24h": 24.0, "calls_1h": 1.0, "calls_24h": 24.0,
                         "observed_h": 24.0})

    def named(features: dict[str, float]) -> tuple[str, float, str]:
        reason = burst_reason(model, 1e-4, {"observed_h": 24.0, **features})
        assert reason.code == "MODEL_ANOMALY" and reason.rarity == "model p99.99"
        return reason.feature, reason.value, reason.window

    # both channels surprising, calls more: the larger surprise names it, not the channel's name
    both = {"sms_1h": 4.0, "sms_24h": 28.0, "calls_1h": 40.0, "calls_24h": 64.0}
    assert model.surprises(both)["sms"] > 0.0
    assert named(both) == ("calls_1h", 40.0, "1h")
    # the 5-minute count names the burst only when 12 x it is above the hour's count
    assert named({"sms_5m": 2.5, "sms_1h": 30.0}) == ("sms_1h", 30.0, "1h")          # 12 x 2.5 = 30: equal
    assert named({"sms_5m": 2.0, "sms_1h": 25.0}) == ("sms_1h", 25.0, "1h")          # 24 < 25 < 26
    assert named({"sms_5m": 2.6, "sms_1h": 30.0}) == ("sms_5m", 2.6, "5m")
    assert named({"sms_1h": 10.0}) == ("sms_1h", 10.0, "1h")                          # no 5-minute count
    assert named({"sms_5m": 0.08}) == ("sms_5m", 0.08, "5m")                          # no hour count
    assert named({"sms_1h": 30.12345}) == ("sms_1h", 30.123, "1h")


def test_a_rule_on_a_since_change_feature_says_so() -> None:
    rule = Rule(code="OTP_AFTER_CHANGE", label="one-time codes", when={"otp_since_change": 3.0}, points=30,
                max_points=30)
    ((points, reason),) = evaluate_rules([rule], {"otp_since_change": 4.0}, None)
    assert (points, reason.window) == (30, "change")
    assert reason.text == "OTP_AFTER_CHANGE: 4 one-time codes since the SIM/device change, rule"


def test_scoring_edges() -> None:
    from services.scorer.scoring import _fmt

    assert (_fmt(10.4), _fmt(3.0), _fmt(2.5), _fmt(9.99)) == ("10", "3", "2.50", "9.99")
    half = Rule(code="HALF", label="x", when={"a": 0.5}, points=20, max_points=40, saturate=4.0)
    assert rule_points(half, {"a": 1.0}) == pytest.approx(30.0)             # ratio 2 below a threshold of 1
    assert rule_points(half, {"a": at_least(0.5)}) == pytest.approx(20.0)   # exactly at the (forgiven) threshold
    assert fuse([0.5]) == pytest.approx(0.5)
    tiny = Rule(code="TINY", label="x", when={"a": 1.0}, points=1, max_points=1)
    never = Rule(code="NEVER", label="x", when={"b": 100.0}, points=50, max_points=50)
    growing = Rule(code="GROW", label="x", when={"a": 1.0}, points=20, max_points=40)
    fired = evaluate_rules([never, tiny, growing], {"a": 2.34567}, None)
    assert [(r.code, r.value) for _, r in fired] == [("TINY", 2.346), ("GROW", 2.346)]
    held = evaluate_rules([never, tiny, growing], {"a": 2.34567}, None, matched=[2])
    assert held[0][0] == pytest.approx(rule_points(growing, {"a": 2.34567})) and held[0][0] > 20


def test_policy_keeps_its_rules_in_order(tmp_path: Path) -> None:
    doc = _packaged()
    policy = _load(tmp_path, doc)
    assert [r.code for r in policy.rules["number"]] == [r["code"] for r in doc["rules"]["number"]]
