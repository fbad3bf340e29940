"""The privacy plaintext scan covers every topic beyond the telco's boundary (no broker)."""

from __future__ import annotations

from reliability.scenarios.privacy import NOT_SCANNED, SCANNED
from services.common import topics


def _topic_constants() -> set[str]:
    """Every topic name the topics module defines (its upper-case dotted string constants)."""
    return {value for name, value in vars(topics).items()
            if name.isupper() and isinstance(value, str) and value.startswith(("fraudradar.", "telco."))}


def test_every_topic_constant_is_an_installed_topic() -> None:
    # the scan derives its list from default_specs: a topic named but not installed would be missed
    assert {spec.suffix for spec in topics.default_specs()} == _topic_constants()


def test_privacy_scan_reads_every_topic_but_raw_input_and_dlq() -> None:
    assert set(NOT_SCANNED) == {topics.RAW, topics.DLQ}
    assert len(SCANNED) == len(set(SCANNED))
    assert set(SCANNED) == _topic_constants() - set(NOT_SCANNED)
    # the topics the explicit list used to leave out
    assert {topics.CALLS, topics.PARTNER_STATE} <= set(SCANNED)
