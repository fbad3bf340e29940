"""Regression found by the reliability suite: a scorer redelivery must reach partners once."""

from __future__ import annotations

from services.api.store import AlertIds, dedupe_alert_ids


def test_redelivered_alert_ids_are_materialised_once() -> None:
    assert list(dedupe_alert_ids(["a", "b", "a", "c", "b"])) == ["a", "b", "c"]


def test_alert_ids_are_bounded() -> None:
    ids = AlertIds(capacity=2)
    assert ids.first_time("a") and ids.first_time("b") and ids.first_time("c")
    assert ids.first_time("a")  # forgotten (oldest first), so accepted again
    assert not ids.first_time("c")
