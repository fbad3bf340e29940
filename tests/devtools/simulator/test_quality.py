"""Backtest metrics on a small hand-made case whose answers are worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from services.devtools.simulator.quality import AlertPoint, TruthEntity, compute_metrics, evaluate

H = 3_600_000


def _case() -> dict[str, Any]:
    truth = [
        # farm: two numbers and a device, from t=1h
        TruthEntity("sms_farm", "number", "n1", 1 * H, 3 * H),
        TruthEntity("sms_farm", "number", "n2", 1 * H, 3 * H),
        TruthEntity("sms_farm", "device", "d1", 1 * H, 3 * H),
        # wangiri: one number from t=2h
        TruthEntity("wangiri", "number", "w1", 2 * H, 4 * H),
    ]
    alerts = [
        AlertPoint("number", "n1", "medium", 1 * H + 60_000),     # below threshold: ignored
        AlertPoint("number", "n1", "high", 1 * H + 600_000),      # ttd 600 s
        AlertPoint("number", "n1", "critical", 1 * H + 900_000),  # later: no effect
        AlertPoint("device", "d1", "critical", 1 * H + 1_800_000),  # ttd 1800 s
        AlertPoint("number", "w1", "high", 2 * H - 1000),         # before the start, inside the lead: ttd 0
        AlertPoint("number", "x1", "high", 5 * H),                # false alarm (number)
        AlertPoint("number", "x2", "low", 5 * H),                 # below threshold
        AlertPoint("device", "y1", "high", 5 * H),                # false alarm (device)
    ]
    scores = {("number", "n1"): 90.0, ("number", "n2"): 40.0, ("device", "d1"): 95.0, ("number", "w1"): 60.0,
              ("number", "x1"): 80.0, ("number", "x2"): 30.0, ("device", "y1"): 70.0, ("number", "z1"): 10.0,
              ("number", "z2"): 5.0}
    return {"truth": truth, "alerts": alerts, "max_scores": scores}


def test_hand_made_case() -> None:
    c = _case()
    m = compute_metrics(c["truth"], c["alerts"], c["max_scores"], normal_numbers=1000,
                        duration_days=0.5, events=1234, events_per_s=100.0, model_version="v1",
                        scenario_order=["sms_farm", "wangiri"])
    assert list(m) == ["events", "events_per_s", "model_version", "scenarios", "overall", "campaigns",
                       "hard_negatives"]
    assert m["campaigns"] is None        # a truth file without instances
    farm = m["scenarios"]["sms_farm"]  # type: ignore[index]
    assert list(farm) == ["entities", "detected", "recall", "precision", "ttd_median_s", "ttd_p90_s",
                          "victims_before_alert_median", "victims_before_alert_p90"]
    assert farm["entities"] == 3 and farm["detected"] == 2
    assert farm["recall"] == pytest.approx(2 / 3)
    # number and device false alarms both count against sms_farm (it labels both types)
    assert farm["precision"] == pytest.approx(2 / 4)
    assert farm["ttd_median_s"] == pytest.approx(1200.0)
    assert farm["ttd_p90_s"] == pytest.approx(600 + 0.9 * 1200)
    wangiri = m["scenarios"]["wangiri"]  # type: ignore[index]
    assert wangiri == {"entities": 1, "detected": 1, "recall": 1.0, "precision": 1 / 2, "ttd_median_s": 0.0,
                       "ttd_p90_s": 0.0, "victims_before_alert_median": 0.0, "victims_before_alert_p90": 0.0}
    overall = m["overall"]
    assert list(overall) == ["precision", "recall", "false_alarms_per_100k_per_day", "roc_auc", "pr_auc"]  # type: ignore[arg-type]
    assert overall["precision"] == pytest.approx(3 / 5)  # type: ignore[index]
    assert overall["recall"] == pytest.approx(3 / 4)  # type: ignore[index]
    # 2 false alarms / 1000 normal numbers * 100k / 0.5 day
    assert overall["false_alarms_per_100k_per_day"] == pytest.approx(400.0)  # type: ignore[index]
    # ranking: fraud {95, 90, 60, 40} vs normal {80, 70, 30, 10, 5}
    # pairs fraud>normal: 95:5, 90:5, 60:3, 40:3 -> 16 of 20
    assert overall["roc_auc"] == pytest.approx(16 / 20)  # type: ignore[index]
    # average precision: ranks 95(F) 90(F) 80 70 60(F) 40(F) 30 10 5
    ap = (1 / 1 + 2 / 2 + 3 / 5 + 4 / 6) / 4
    assert overall["pr_auc"] == pytest.approx(ap)  # type: ignore[index]
    assert m["events"] == 1234 and m["model_version"] == "v1"


def test_an_entity_flagged_within_the_cooldown_before_its_start_is_detected_with_ttd_0() -> None:
    # a farm SIM whose modem was flagged at the SIM activations 90 min before this SIM's first
    # act: the scorer raises no second alert in that episode, so the SIM counts as detected with
    # time to detect 0; an alert more than the lead before the start stays ignored (a SIM-swap
    # victim's normal past)
    truth = [TruthEntity("slow_low_farm", "number", "s1", 2 * H, 6 * H),
             TruthEntity("slow_low_farm", "number", "s2", 2 * H, 6 * H),
             TruthEntity("sim_swap_takeover", "number", "v1", 30 * H, 32 * H)]
    alerts = [AlertPoint("number", "s1", "high", 2 * H - 90 * 60_000),
              AlertPoint("number", "s1", "high", 5 * H),
              AlertPoint("number", "s2", "high", 2 * H + 300_000),
              AlertPoint("number", "v1", "high", 30 * H - 25 * H)]
    ev = evaluate(truth, alerts, {}, normal_numbers=100, duration_days=1.5, events=1, events_per_s=1.0,
                  model_version="v1")
    farm = ev.metrics["scenarios"]["slow_low_farm"]  # type: ignore[index]
    assert farm["detected"] == 2 and sorted(ev.ttd_s["slow_low_farm"]) == [0.0, 300.0]
    assert ev.detected_before_start == {"slow_low_farm": 1, "sim_swap_takeover": 0}
    swap = ev.metrics["scenarios"]["sim_swap_takeover"]  # type: ignore[index]
    assert swap["detected"] == 0 and ev.false_alarms == set()
    assert list(farm) == ["entities", "detected", "recall", "precision", "ttd_median_s", "ttd_p90_s",
                          "victims_before_alert_median", "victims_before_alert_p90"]
    # the lead is a parameter (the backtest passes the policy's cooldown); 0: only alerts from the start on
    strict = evaluate(truth, alerts, {}, normal_numbers=100, duration_days=1.5, events=1, events_per_s=1.0,
                      model_version="v1", lead_ms=0)
    assert sorted(strict.ttd_s["slow_low_farm"]) == [300.0, 3 * 3600.0]


def test_min_level_critical_changes_detection() -> None:
    c = _case()
    ev = evaluate(c["truth"], c["alerts"], c["max_scores"], normal_numbers=1000, duration_days=0.5, events=1,
                  events_per_s=1.0, model_version="v1", min_level="critical")
    farm = ev.metrics["scenarios"]["sms_farm"]  # type: ignore[index]
    assert farm["detected"] == 2     # n1 critical at 900 s, d1 at 1800 s
    assert farm["ttd_median_s"] == pytest.approx(1350.0)
    assert ev.false_alarms == set()


def test_truth_never_seen_scores_zero_and_single_class_has_no_auc() -> None:
    truth = [TruthEntity("wangiri", "number", "w1", 0, H)]
    m = compute_metrics(truth, [], {("number", "a"): 3.0}, normal_numbers=10, duration_days=1.0, events=1,
                        events_per_s=1.0, model_version="v")
    assert m["overall"]["roc_auc"] == pytest.approx(0.0)  # type: ignore[index]
    m = compute_metrics([], [], {("number", "a"): 3.0}, normal_numbers=10, duration_days=1.0, events=1,
                        events_per_s=1.0, model_version="v")
    assert m["overall"]["roc_auc"] is None and m["overall"]["pr_auc"] is None  # type: ignore[index]
    assert m["scenarios"] == {}


def test_campaign_grouping_counts_pairs_of_one_instance_that_share_a_campaign() -> None:
    truth = [TruthEntity("sms_farm", "number", n, 1 * H, 3 * H, "sms_farm#0") for n in ("a1", "a2", "a3")]
    truth += [TruthEntity("sms_farm", "device", "ad", 1 * H, 3 * H, "sms_farm#0")]
    truth += [TruthEntity("sms_farm", "number", n, 1 * H, 3 * H, "sms_farm#1") for n in ("b1", "b2")]
    truth += [TruthEntity("wangiri", "number", "w1", 1 * H, 3 * H, "wangiri#0")]
    alerts = [AlertPoint("number", "a1", "high", 2 * H, "cmp-1"),
              AlertPoint("number", "a2", "high", 2 * H, "cmp-1"),
              AlertPoint("number", "a3", "high", 2 * H, "cmp-2"),     # its farm split in two
              AlertPoint("number", "a3", "high", 2 * H + 1, "cmp-1"),  # a later alert does not count
              AlertPoint("device", "ad", "medium", 2 * H, "cmp-1"),   # below the threshold: not counted
              AlertPoint("number", "b1", "high", 2 * H, "cmp-2"),     # another farm merged with a3
              AlertPoint("number", "b2", "high", 2 * H, None),        # no campaign: its own
              AlertPoint("number", "w1", "high", 2 * H, None),
              AlertPoint("number", "x1", "high", 2 * H, "cmp-1")]     # a false alarm in farm 0's campaign
    m = compute_metrics(truth, alerts, {}, normal_numbers=100, duration_days=1.0, events=1, events_per_s=1.0,
                        model_version="v", scenario_order=["sms_farm", "wangiri"])
    c = m["campaigns"]
    assert c is not None
    # pairs of one instance: farm 0 {a1,a2,a3}: 3, farm 1 {b1,b2}: 1 -> 4; sharing a campaign: a1-a2
    assert c["pair_recall"] == pytest.approx(1 / 4)  # type: ignore[index]
    # pairs sharing a campaign: cmp-1 {a1,a2,x1}: 3, cmp-2 {a3,b1}: 1 -> 4; of one instance: 1
    assert c["pair_precision"] == pytest.approx(1 / 4)  # type: ignore[index]
    assert c["instances"] == 2  # type: ignore[index]
    # farm 0: {cmp-1, cmp-2} = 2 campaigns; farm 1: {cmp-2, None} = 2
    assert c["campaigns_per_instance"] == {"sms_farm": 2.0}  # type: ignore[index]


def test_one_campaign_per_instance_scores_1() -> None:
    truth = [TruthEntity("sim_box", "number", n, 0, H, "sim_box#0") for n in ("s1", "s2", "s3")]
    alerts = [AlertPoint("number", n, "high", H // 2, "cmp-s") for n in ("s1", "s2", "s3")]
    c = compute_metrics(truth, alerts, {}, normal_numbers=1, duration_days=1.0, events=1, events_per_s=1.0,
                        model_version="v")["campaigns"]
    assert c == {"instances": 1, "pair_recall": 1.0, "pair_precision": 1.0, "campaigns_per_instance": {"sim_box": 1.0}}


def test_victims_before_alert_and_hard_negatives_on_a_hand_made_case() -> None:
    from services.devtools.simulator.quality import NegativeEntity

    truth = [TruthEntity("sms_farm", "number", "f1", 1 * H, 3 * H),
             TruthEntity("sms_farm", "number", "f2", 1 * H, 3 * H),
             TruthEntity("sms_farm", "number", "f3", 1 * H, 3 * H),
             TruthEntity("sim_swap_takeover", "number", "v1", 2 * H, 3 * H)]
    m = 60_000
    contacts = {
        # f1: 4 distinct recipients before its alert at 1h+10m (r1 twice), 2 after
        ("number", "f1"): [(1 * H + 1 * m, "r1"), (1 * H + 2 * m, "r1"), (1 * H + 3 * m, "r2"),
                           (1 * H + 4 * m, "r3"), (1 * H + 9 * m, "r4"), (1 * H + 11 * m, "r5"),
                           (1 * H + 12 * m, "r6")],
        # f2: never detected: every recipient from its start counts
        ("number", "f2"): [(1 * H + 5 * m, "r1"), (2 * H, "r7"), (2 * H + m, "r8")],
        # f3: flagged before its first act (inside the lead): no victims
        ("number", "f3"): [(1 * H + 30 * m, "r9")],
        # v1: the victim's normal contacts before the swap do not count
        ("number", "v1"): [(1 * H, "c1"), (1 * H + m, "c2"), (2 * H + m, "x1"), (2 * H + 2 * m, "x2")],
    }
    alerts = [AlertPoint("number", "f1", "low", 1 * H + 5 * m, reasons=("X",)),     # below threshold
              AlertPoint("number", "f1", "high", 1 * H + 10 * m),
              AlertPoint("number", "f3", "high", 1 * H - 10 * m),
              AlertPoint("number", "v1", "critical", 2 * H + 3 * m),
              # hard negatives: an IoT SIM at high with two reasons, one at medium, a modem device at critical
              AlertPoint("number", "i1", "medium", 5 * H, reasons=("IOT_A",)),
              AlertPoint("number", "i1", "high", 6 * H, reasons=("IOT_A", "IOT_B")),
              AlertPoint("number", "i2", "medium", 5 * H, reasons=("IOT_A",)),
              AlertPoint("device", "m1", "critical", 5 * H, reasons=("MODEM",)),
              # a false alarm outside every class
              AlertPoint("number", "u1", "high", 5 * H)]
    negatives = [NegativeEntity("iot_fleet", "number", n) for n in ("i1", "i2", "i3")] + [
        NegativeEntity("business_modem", "device", "m1"), NegativeEntity("business_modem", "number", "m1n"),
        NegativeEntity("business_modem", "device", "m1"),     # listed twice: one entity
        NegativeEntity("tourist", "number", "f2")]            # fraud in this run: not a negative
    ev = evaluate(truth, alerts, {}, normal_numbers=1000, duration_days=1.0, events=1, events_per_s=1.0,
                  model_version="v", contacts=contacts, negatives=negatives)
    farm = ev.metrics["scenarios"]["sms_farm"]  # type: ignore[index]
    assert sorted(ev.victims["sms_farm"]) == [0, 3, 4]
    assert farm["victims_before_alert_median"] == 3.0
    assert farm["victims_before_alert_p90"] == pytest.approx(3 + 0.8 * 1)
    assert ev.victims["sim_swap_takeover"] == [2]
    hn = ev.metrics["hard_negatives"]  # type: ignore[index]
    assert hn["unlabelled_false_alarms"] == 1
    assert set(hn["classes"]) == {"iot_fleet", "business_modem"}
    iot = hn["classes"]["iot_fleet"]
    assert iot == {"entities": 3, "flagged": 1, "flagged_share": 1 / 3, "flagged_by_type": {"number": 1},
                   "flagged_any_level": 2, "levels": {"medium": 1, "high": 1}, "reasons": {"IOT_A": 1, "IOT_B": 1}}
    modem = hn["classes"]["business_modem"]
    assert (modem["entities"], modem["flagged"], modem["flagged_by_type"], modem["levels"], modem["reasons"]) == (
        2, 1, {"device": 1}, {"critical": 1}, {"MODEM": 1})
