"""Hard per-subscriber aggregate tables: what a telco fraud team's labelled table looks like.

``make_hard_table`` draws a table with the properties that broke our models on a real one:

- ~55 aggregated call/SMS/usage features over three months (``*_m1`` .. ``*_m3``), ratios,
  tenure and device counts, heavy-tailed (log-normal activity with per-feature noise; counts
  that are mostly 0 with rare large values);
- signed features (month-on-month deltas, balance change, ARPU change);
- about 20 % of rows with 1-8 empty fields (missing completely at random: an empty field says
  nothing about the label);
- about 30 % fraud, *lower* than the population on most features (subscription fraud: new SIMs,
  little incoming traffic, few contacts, small recharges) and higher on a few (international and
  premium-rate calls, night calls, unanswered share, device changes), with a subtle share of the
  fraud much closer to normal, so no single feature separates the classes;
- a text column (``plan``) that is not a feature, and an id column.

The draw depends on ``seed`` only; every parameter above is a keyword. Used by the tests of
``fraudradar evaluate-table``, by ``bench/detectors.py`` and as ``fraudradar evaluate-table
--make-sample``.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

MONTHLY = ("voice_out_min", "voice_in_min", "calls_out", "calls_in", "sms_out", "sms_in", "data_mb",
           "recharge_amount", "distinct_contacts", "roaming_min", "intl_out_min", "night_calls")
SIGNED = ("voice_out_delta", "data_delta", "recharge_delta", "sms_out_delta", "balance_change", "arpu_change")
OTHER = ("tenure_days", "avg_call_s", "unanswered_share", "distinct_cells", "handset_changes", "premium_calls",
         "topup_count", "days_active", "arpu_m3", "in_out_ratio", "new_number_sms_share", "weekend_share",
         "reciprocated_share")
# fraud multiplier on a subscriber's level, per monthly feature: < 1 lower, > 1 higher
_FRAUD_MONTHLY = {"voice_out_min": 0.8, "voice_in_min": 0.3, "calls_out": 1.1, "calls_in": 0.3, "sms_out": 0.7,
                  "sms_in": 0.35, "data_mb": 0.4, "recharge_amount": 0.45, "distinct_contacts": 0.45,
                  "roaming_min": 0.6, "intl_out_min": 3.0, "night_calls": 2.2}
_SCALE = {"voice_out_min": 120.0, "voice_in_min": 110.0, "calls_out": 60.0, "calls_in": 55.0, "sms_out": 40.0,
          "sms_in": 45.0, "data_mb": 2500.0, "recharge_amount": 20.0, "distinct_contacts": 25.0,
          "roaming_min": 3.0, "intl_out_min": 2.0, "night_calls": 4.0}
_SPARSE = {"roaming_min": 0.12, "intl_out_min": 0.18, "night_calls": 0.5}   # share of subscribers with any


def feature_names() -> list[str]:
    return [f"{name}_m{m}" for name in MONTHLY for m in (1, 2, 3)] + list(SIGNED) + list(OTHER)


def make_hard_table(rows: int = 6000, seed: int = 0, *, fraud_share: float = 0.3, missing_rows: float = 0.2,
                    subtle_share: float = 0.4) -> tuple[list[str], list[list[str]]]:
    """(header, rows as CSV cells): ``subscriber_id``, ``plan``, the features, ``is_fraud``."""
    rng = random.Random(seed)
    names = feature_names()
    header = ["subscriber_id", "plan", *names, "is_fraud"]
    out: list[list[str]] = []
    for i in range(rows):
        fraud = rng.random() < fraud_share
        # how strongly this fraud shows (subtle ones sit close to normal)
        strength = (rng.uniform(0.1, 0.45) if rng.random() < subtle_share else rng.uniform(0.6, 1.0)) if fraud else 0.0
        level = rng.lognormvariate(0.0, 0.9)          # the subscriber's overall activity (heavy tail)
        values: dict[str, float] = {}
        for name in MONTHLY:
            mult = _FRAUD_MONTHLY[name] ** strength if fraud else 1.0
            active = rng.random() < min(1.0, _SPARSE.get(name, 1.0) * (1.6 if fraud and mult > 1 else 1.0))
            trend = rng.gauss(0.0, 0.25)
            for m in (1, 2, 3):
                if not active:
                    values[f"{name}_m{m}"] = 0.0
                    continue
                v = _SCALE[name] * level * mult * math.exp(trend * (m - 2)) * rng.lognormvariate(0.0, 0.6)
                if rng.random() < 0.02:               # a month with an outlandish value, any class
                    v *= rng.paretovariate(1.2)
                values[f"{name}_m{m}"] = round(v, 2) if name in ("data_mb", "recharge_amount") else float(round(v))
        values["voice_out_delta"] = values["voice_out_min_m3"] - values["voice_out_min_m2"]
        values["data_delta"] = round(values["data_mb_m3"] - values["data_mb_m2"], 2)
        values["recharge_delta"] = round(values["recharge_amount_m3"] - values["recharge_amount_m2"], 2)
        values["sms_out_delta"] = values["sms_out_m3"] - values["sms_out_m2"]
        spend = 0.05 * values["voice_out_min_m3"] + 0.002 * values["data_mb_m3"] + 0.3 * values["intl_out_min_m3"]
        values["balance_change"] = round(values["recharge_amount_m3"] - spend + rng.gauss(0.0, 3.0), 2)
        arpu = [values[f"recharge_amount_m{m}"] * rng.uniform(0.8, 1.2) for m in (1, 2, 3)]
        values["arpu_change"] = round(arpu[2] - arpu[1], 2)
        values["tenure_days"] = float(round(rng.lognormvariate(6.3, 0.9) * (0.3 ** strength)))
        values["avg_call_s"] = round(rng.lognormvariate(4.2, 0.5) * (0.7 ** strength), 1)
        values["unanswered_share"] = round(min(1.0, rng.betavariate(2, 8) * (2.0 ** strength)), 3)
        values["distinct_cells"] = float(round(rng.lognormvariate(2.3, 0.7) * level ** 0.3 * (0.5 ** strength)))
        values["handset_changes"] = float(min(20, int(rng.expovariate(1.5) * (2.5 ** strength))))
        values["premium_calls"] = float(int(rng.expovariate(0.5) * (4.0 ** strength))) if rng.random() < (
            0.08 + 0.2 * strength) else 0.0
        values["topup_count"] = float(max(0, round(rng.lognormvariate(1.3, 0.6) * (0.5 ** strength))))
        values["days_active"] = float(max(1, min(90, round(rng.gauss(75, 15) * (0.6 ** strength)))))
        values["arpu_m3"] = round(arpu[2], 2)
        values["in_out_ratio"] = round((values["calls_in_m3"] + 1.0) / (values["calls_out_m3"] + 1.0), 3)
        values["new_number_sms_share"] = round(min(1.0, rng.betavariate(2, 6) * (1.8 ** strength)), 3)
        values["weekend_share"] = round(rng.betavariate(3, 7), 3)
        values["reciprocated_share"] = round(min(1.0, rng.betavariate(6, 3) * (0.55 ** strength)), 3)
        cells = [_cell(values[n]) for n in names]
        if rng.random() < missing_rows:
            for k in rng.sample(range(len(names)), rng.randint(1, 8)):
                cells[k] = ""
        plan = rng.choice(("prepaid", "postpaid", "business")) if not fraud else rng.choice(("prepaid", "prepaid",
                                                                                              "postpaid"))
        out.append([f"S{i:06d}", plan, *cells, "1" if fraud else "0"])
    return header, out


def _cell(v: float) -> str:
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else repr(v)


def write_hard_table(path: Path, rows: int = 6000, seed: int = 0) -> tuple[int, int]:
    """Write a table to ``path``; returns (rows, fraud rows)."""
    header, table = make_hard_table(rows, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(table)
    return len(table), sum(r[-1] == "1" for r in table)
