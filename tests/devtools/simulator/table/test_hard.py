"""The generated sample table has the properties that broke our models on a real one."""

from __future__ import annotations

from services.devtools.simulator.table.hard import feature_names, make_hard_table


def test_the_generated_table_has_the_hard_properties() -> None:
    header, rows = make_hard_table(3000, seed=5)
    names = feature_names()
    assert len(names) == 55 and header == ["subscriber_id", "plan", *names, "is_fraud"]
    fraud = [r for r in rows if r[-1] == "1"]
    assert 0.25 < len(fraud) / len(rows) < 0.35
    assert 0.15 < sum(any(c == "" for c in r) for r in rows) / len(rows) < 0.25
    col = {n: i + 2 for i, n in enumerate(names)}
    signed = [n for n in names if any(r[col[n]].startswith("-") for r in rows)]
    assert len(signed) >= 4

    def median(name: str, label: str) -> float:
        values = sorted(float(r[col[name]]) for r in rows if r[-1] == label and r[col[name]] != "")
        return values[len(values) // 2]

    lower = [n for n in names if n not in signed and median(n, "1") < median(n, "0")]
    higher = [n for n in names if n not in signed and median(n, "1") > median(n, "0")]
    assert len(lower) > 2 * len(higher) >= 2
    data = sorted(float(r[col["data_mb_m1"]]) for r in rows if r[col["data_mb_m1"]] != "")
    assert data[-1] > 20 * data[len(data) // 2]            # heavy tail
