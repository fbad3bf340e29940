"""The feature catalogue: every record counter and feature of the scorer, in one table.

One declarative table per entity type, read by everything that names a feature:

* ``layout`` takes the record's counters from ``COUNTERS`` (each a decayed count per window);
* ``features.number_features``/``device_features`` (the Python reference) compute ``FEATURES``
  in table order: a ``count`` reads its record slot, any other kind has its formula in
  ``features.DERIVED``;
* ``detectors.BURST_CHANNELS`` are the ``BURST`` channels, each a count at every window;
* ``policy`` rejects a rule on a feature the table does not have;
* the C twin (``_fastcore.c``) exports its feature names and counters, checked against this
  table at import (``features.LAYOUT_SIGNATURE``) and by ``tests/scorer/test_catalogue.py``.

Adding a feature is one row here plus its update code (and, for a new counter or a derived
feature, its line in ``_fastcore.c``). The order of the rows is the order of the feature
vector the models see: append, do not reorder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EntityKind = Literal["number", "device"]
WINDOWS: tuple[tuple[str, int], ...] = (("5m", 300_000), ("1h", 3_600_000), ("24h", 86_400_000))
WINDOW_NAMES = tuple(name for name, _ in WINDOWS)

# record counters, each a forward-decayed count at every window (``layout`` slots, in this order)
COUNTERS: dict[EntityKind, tuple[str, ...]] = {
    "number": ("sms_out", "sms_in", "call_out", "call_in", "url_out", "new_rcpt", "night_out", "short_call",
               "unanswered", "new_cell", "a2p_in"),
    "device": ("out", "new_imsi", "new_number", "new_cell", "new_rcpt", "change", "url_out", "call_out", "a2p_in"),
}

Kind = Literal["count", "share", "ratio", "distinct", "age", "recency", "flag", "engine"]


@dataclass(frozen=True)
class Feature:
    """One feature: its name, the window it looks at, how it is computed and where it is read.

    ``kind``: ``count`` reads ``slot`` = (counter, window) of the record; ``share``, ``ratio``,
    ``distinct``, ``age``, ``recency`` and ``flag`` are formulas over the record
    (``features.DERIVED``); ``engine`` is set by the engine from the policy (not the record).
    """

    name: str
    window: str          # 5m | 1h | 24h | lifetime | now
    kind: Kind
    slot: tuple[str, str] | None = None


def _count(name: str, counter: str, window: str) -> Feature:
    return Feature(name, window, "count", (counter, window))


FEATURES: dict[EntityKind, tuple[Feature, ...]] = {
    "number": (
        _count("sms_out_5m", "sms_out", "5m"), _count("sms_out_1h", "sms_out", "1h"),
        _count("sms_out_24h", "sms_out", "24h"),
        _count("call_out_5m", "call_out", "5m"), _count("call_out_1h", "call_out", "1h"),
        _count("call_out_24h", "call_out", "24h"),
        _count("new_recipients_5m", "new_rcpt", "5m"), _count("new_recipients_1h", "new_rcpt", "1h"),
        _count("new_recipients_24h", "new_rcpt", "24h"),
        Feature("new_recipient_share_1h", "1h", "share"), Feature("new_recipient_share_24h", "24h", "share"),
        Feature("distinct_recipients", "lifetime", "distinct"),
        Feature("url_share_1h", "1h", "share"), Feature("url_share_24h", "24h", "share"),
        Feature("url_share_lb_24h", "24h", "share"),
        _count("url_sms_1h", "url_out", "1h"), _count("url_sms_24h", "url_out", "24h"),
        Feature("out_in_ratio_24h", "24h", "ratio"),
        Feature("night_share_24h", "24h", "share"),
        _count("new_cells_24h", "new_cell", "24h"),
        Feature("short_call_share_1h", "1h", "share"), Feature("unanswered_share_1h", "1h", "share"),
        _count("unanswered_1h", "unanswered", "1h"),
        _count("a2p_in_5m", "a2p_in", "5m"), _count("a2p_in_1h", "a2p_in", "1h"), _count("a2p_in_24h", "a2p_in", "24h"),
        _count("url_sms_5m", "url_out", "5m"), _count("unanswered_5m", "unanswered", "5m"),
        _count("unanswered_24h", "unanswered", "24h"),
        Feature("observed_h", "lifetime", "age"),
        Feature("sim_change_recency", "now", "recency"), Feature("device_change_recency", "now", "recency"),
        Feature("sim_newness", "now", "recency"),
        Feature("off_net", "lifetime", "flag"),
    ),
    "device": (
        _count("out_5m", "out", "5m"), _count("out_1h", "out", "1h"), _count("out_24h", "out", "24h"),
        _count("new_imsis_5m", "new_imsi", "5m"), _count("new_imsis_1h", "new_imsi", "1h"),
        _count("new_imsis_24h", "new_imsi", "24h"),
        _count("new_numbers_5m", "new_number", "5m"), _count("new_numbers_1h", "new_number", "1h"),
        _count("new_numbers_24h", "new_number", "24h"),
        _count("new_recipients_5m", "new_rcpt", "5m"),
        _count("url_sms_5m", "url_out", "5m"), _count("url_sms_1h", "url_out", "1h"),
        _count("calls_out_5m", "call_out", "5m"),
        Feature("url_share_1h", "1h", "share"), Feature("url_share_24h", "24h", "share"),
        Feature("new_recipient_share_24h", "24h", "share"),
        _count("a2p_in_5m", "a2p_in", "5m"), _count("a2p_in_1h", "a2p_in", "1h"),
        Feature("observed_h", "lifetime", "age"),
        Feature("distinct_imsis", "lifetime", "distinct"), Feature("distinct_numbers", "lifetime", "distinct"),
        _count("new_cells_24h", "new_cell", "24h"),
        _count("new_recipients_1h", "new_rcpt", "1h"), _count("new_recipients_24h", "new_rcpt", "24h"),
        Feature("distinct_recipients", "lifetime", "distinct"),
        _count("changes_24h", "change", "24h"),
        _count("url_sms_24h", "url_out", "24h"), _count("calls_out_1h", "call_out", "1h"),
        _count("calls_out_24h", "call_out", "24h"),
        _count("a2p_in_24h", "a2p_in", "24h"),
    ),
}

# set by the engine (from the policy's modem TACs), after the record's features
ENGINE_FEATURES: tuple[Feature, ...] = (Feature("modem_device", "now", "engine"),)

# the rate channels the burst-aware detectors watch, in their order: ``<channel>_<window>`` counts
BURST: dict[EntityKind, tuple[str, ...]] = {
    "number": ("sms_out", "call_out", "new_recipients", "url_sms", "unanswered", "a2p_in"),
    "device": ("out", "new_imsis", "new_numbers", "new_recipients", "url_sms", "calls_out", "a2p_in"),
}


def record_features(entity_type: EntityKind) -> tuple[str, ...]:
    """The names of the features computed from the record, in the models' order."""
    return tuple(f.name for f in FEATURES[entity_type])


def names(entity_type: EntityKind) -> frozenset[str]:
    """Every feature a rule may name for this entity type."""
    return frozenset(record_features(entity_type)) | {f.name for f in ENGINE_FEATURES}


def burst_channels(entity_type: EntityKind) -> list[tuple[str, str, str, str]]:
    """``(channel, 5m, 1h, 24h feature)`` of each ``BURST`` channel."""
    counts = {f.name for f in FEATURES[entity_type] if f.kind == "count"}
    out = []
    for channel in BURST[entity_type]:
        channel_5m, channel_1h, channel_24h = (f"{channel}_{w}" for w in WINDOW_NAMES)
        missing = [name for name in (channel_5m, channel_1h, channel_24h) if name not in counts]
        if missing:
            raise ValueError(f"burst channel {entity_type}/{channel}: no count feature {missing}")
        out.append((channel, channel_5m, channel_1h, channel_24h))
    return out
