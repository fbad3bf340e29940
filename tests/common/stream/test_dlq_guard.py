import pytest

from services.common.stream import DlqGuard, DlqLimit, DlqLimitExceeded

TP = ("telco.events", 0)


def test_consecutive_limit() -> None:
    guard = DlqGuard(DlqLimit(max_invalid_ratio=1.0, max_consecutive=3, window=10, min_records=100))
    for _ in range(3):
        guard.record(TP, True)
    guard.record(TP, False)          # a good record resets the run
    for _ in range(3):
        guard.record(TP, True)
    with pytest.raises(DlqLimitExceeded, match="4 consecutive"):
        guard.record(TP, True)


def test_ratio_over_a_sliding_window_per_partition() -> None:
    guard = DlqGuard(DlqLimit(max_invalid_ratio=0.5, max_consecutive=1000, window=10, min_records=10))
    for i in range(100):                 # 40% invalid, steady: never trips
        guard.record(TP, i % 5 < 2)
    guard.record(("telco.events", 1), True)  # another partition has its own window
    for _ in range(3):                   # the window slides: 4, 4, then 5 of 10 invalid (not above 50%)
        guard.record(TP, True)
    with pytest.raises(DlqLimitExceeded, match=r"60% of the last 10 records on telco\.events\[0\]"):
        guard.record(TP, True)


def test_forget_resets_a_revoked_partition() -> None:
    from kafka import TopicPartition

    guard = DlqGuard(DlqLimit(max_invalid_ratio=1.0, max_consecutive=2, window=10, min_records=100))
    guard.record(TP, True)
    guard.record(TP, True)
    guard.forget([TopicPartition(*TP)])
    guard.record(TP, True)
    guard.record(TP, True)           # would be the 4th in a row without forget
