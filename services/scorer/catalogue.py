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

``reply_in`` counts the messages and calls received from a recent recipient (one of the
record's exact recent-recipient set): replies and call-backs, the two-way evidence a business
or a person has and a farm texting strangers does not; ``one_way_share_24h`` is
``1 - min(1, reply_in_24h / (out_24h + 2))``.

Legitimacy evidence, each written so that 1.0 means "none" (rules are ``feature >= value``):
``stranger_share_24h`` is ``min(1, (new_recipients_24h + 2) / (out_24h + 2))``: 1.0 when no
recipient in the last day was one the entity had contacted before (returning recipients: a
business's customers, a person's circle, a call centre's clients come back; a farm's and a SIM
box's targets do not). ``imsi_back`` (devices) counts views whose IMSI was on the device
before and comes back after another IMSI was used: the SIMs of a household or a dual-SIM phone
return, a farm's rotation does not; ``no_sim_return_24h`` is ``1 / (1 + imsi_back_24h)``.
``url_share_lb_24h`` of a device is the 95 % lower bound of its SMS link share, as for numbers.
``burst_sms`` (numbers) counts SMS sent while the number's own 5-minute SMS count already held
about one SMS (``features.BURST_PRIOR``) and its latest event was at most half a minute before
(``features.RUN_GAP_MS``): the second and later messages of a list sent in one go, seconds
apart. A stream of one SMS a minute or more apart, kept up for hours, is paced, not a run.
``paced_share_24h`` is ``1 - min(1, burst_sms_24h / (sms_out_24h + 2))``: 1.0 when none of the
day's SMS came in such a run. A throttled farm paces its messages (that is what keeps it under
volume rules); one announcement texted to a club's list is a single run, judged by the burst
rules, whose legitimacy evidence (replies) only arrives after the run.

The ``since`` features (window ``change``) read the number's change tail (``layout.CHG_*``):
what it did since its latest SIM swap, port-in or device change, for a day after it — calls and
SMS to never-contacted and to known recipients, link SMS to never-contacted ones, one-time codes
received (SMS from senders of the registry's code categories), whether it was seen only on cells
it had never used. ``takeover_evidence`` counts the five account-takeover signals (new SIM, new
device, new area, codes, usual contacts quiet); docs/detection.md says why each.
``new_contact_rate_since_change`` is the never-contacted numbers contacted since the change per
hour since it (``new_contacts_since_change / (hours since the change + 1)``): a takeover spreads
in the hours before the victim notices, an owner's new contacts come at the pace of their life.
``forwarding_near_change`` is 1 while unconditional call forwarding is set on a number whose
latest SIM swap, port-in or device change is at most a day old (whoever holds the line diverts
the bank's verification calls); ``recycled_recent`` is 1 for a day after a number that had
ceased was given a new subscription (it changed hands).
``link_runs_24h`` (kind ``runs``) is how many runs of link SMS to never-contacted recipients the
number has sent, decayed over a day (``layout.LINK_RUNS``, ``features.link_run``): a link SMS to a
stranger more than 30 whole seconds after the previous one starts a run; 0 once the number's
watermark is a week past the latest run (a view dated before the watermark changes neither).
An announcement texted to a list in one go is one run; a farm that must reach strangers all day
needs many, and putting them into few runs makes them runs, which the burst rules judge. It is
rule-only (``RULE_ONLY`` below): the models do not see it.
``history_at_change_h`` (kind ``age``) is how many hours the number had been observed (since the
record's first event) when its latest change came, 0 outside the change tail's day: the takeover
rules ask for enough of it before "never-contacted" and "cells it never used" mean anything
(docs/detection.md "Takeovers on the record's first day"). Larger is not more suspicious, so it
is rule-only too.
``strangers_per_link_run_24h`` is ``new_recipients_24h`` per run of ``link_runs_24h`` (at least
one): how long the runs of links to strangers are. A list bounds an announcement's; a run that
never ends (one link SMS every half minute, all day) does not keep it low. Rule-only as the runs.

Adding a feature is one row here plus its update code (and, for a new counter or a derived
feature, its line in ``_fastcore.c``). The order of the rows is the order of the feature
vector the models see: append, do not reorder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

EntityKind = Literal["number", "device"]
WINDOWS: tuple[tuple[str, int], ...] = (("5m", 300_000), ("1h", 3_600_000), ("24h", 86_400_000))
WINDOW_NAMES = tuple(name for name, _ in WINDOWS)

# record counters, each a forward-decayed count at every window (``layout`` slots, in this order)
COUNTERS: dict[EntityKind, tuple[str, ...]] = {
    "number": ("sms_out", "sms_in", "call_out", "call_in", "url_out", "new_rcpt", "night_out", "short_call",
               "unanswered", "new_cell", "a2p_in", "reply_in", "burst_sms"),
    "device": ("out", "new_imsi", "new_number", "new_cell", "new_rcpt", "change", "url_out", "call_out", "a2p_in",
               "reply_in", "imsi_back"),
}

Kind = Literal["count", "share", "ratio", "distinct", "age", "recency", "flag", "since", "runs", "engine"]


@dataclass(frozen=True)
class Feature:
    """One feature: its name, the window it looks at, how it is computed and where it is read.

    ``kind``: ``count`` reads ``slot`` = (counter, window) of the record; ``share``, ``ratio``,
    ``distinct``, ``age``, ``recency`` and ``flag`` are formulas over the record
    (``features.DERIVED``); ``engine`` is set by the engine from the policy (not the record).
    """

    name: str
    window: str          # 5m | 1h | 24h | lifetime | now | change (since the latest SIM/device change, <= 24 h)
    kind: Kind
    slot: tuple[str, str] | None = None


# one row a feature, in the models' order: name, window, kind, and for a count the record
# counter it reads (at the row's window); "-" for the other kinds
_TABLE: dict[EntityKind, str] = {
    "number": """
    sms_out_5m                5m        count     sms_out
    sms_out_1h                1h        count     sms_out
    sms_out_24h               24h       count     sms_out
    call_out_5m               5m        count     call_out
    call_out_1h               1h        count     call_out
    call_out_24h              24h       count     call_out
    new_recipients_5m         5m        count     new_rcpt
    new_recipients_1h         1h        count     new_rcpt
    new_recipients_24h        24h       count     new_rcpt
    new_recipient_share_1h    1h        share     -
    new_recipient_share_24h   24h       share     -
    distinct_recipients       lifetime  distinct  -
    url_share_1h              1h        share     -
    url_share_24h             24h       share     -
    url_share_lb_24h          24h       share     -
    url_sms_1h                1h        count     url_out
    url_sms_24h               24h       count     url_out
    out_in_ratio_24h          24h       ratio     -
    night_share_24h           24h       share     -
    new_cells_24h             24h       count     new_cell
    short_call_share_1h       1h        share     -
    unanswered_share_1h       1h        share     -
    unanswered_1h             1h        count     unanswered
    a2p_in_5m                 5m        count     a2p_in
    a2p_in_1h                 1h        count     a2p_in
    a2p_in_24h                24h       count     a2p_in
    url_sms_5m                5m        count     url_out
    unanswered_5m             5m        count     unanswered
    unanswered_24h            24h       count     unanswered
    observed_h                lifetime  age       -
    sim_change_recency        now       recency   -
    device_change_recency     now       recency   -
    sim_newness               now       recency   -
    off_net                   lifetime  flag      -
    one_way_share_24h         24h       share     -
    stranger_share_24h        24h       share     -
    new_contacts_since_change   change  since     -
    link_contacts_since_change  change  since     -
    codes_since_change          change  since     -
    new_area_since_change       change  since     -
    contacts_quiet_since_change change  since     -
    takeover_evidence           change  since     -
    forwarding_near_change      change  flag      -
    recycled_recent             now     flag      -
    paced_share_24h           24h       share     -
    new_contact_rate_since_change change since    -
    link_runs_24h             24h       runs      -
    history_at_change_h       change    age       -
    strangers_per_link_run_24h 24h      ratio     -
""",
    "device": """
    out_5m                    5m        count     out
    out_1h                    1h        count     out
    out_24h                   24h       count     out
    new_imsis_5m              5m        count     new_imsi
    new_imsis_1h              1h        count     new_imsi
    new_imsis_24h             24h       count     new_imsi
    new_numbers_5m            5m        count     new_number
    new_numbers_1h            1h        count     new_number
    new_numbers_24h           24h       count     new_number
    new_recipients_5m         5m        count     new_rcpt
    url_sms_5m                5m        count     url_out
    url_sms_1h                1h        count     url_out
    calls_out_5m              5m        count     call_out
    url_share_1h              1h        share     -
    url_share_24h             24h       share     -
    new_recipient_share_24h   24h       share     -
    a2p_in_5m                 5m        count     a2p_in
    a2p_in_1h                 1h        count     a2p_in
    observed_h                lifetime  age       -
    distinct_imsis            lifetime  distinct  -
    distinct_numbers          lifetime  distinct  -
    new_cells_24h             24h       count     new_cell
    new_recipients_1h         1h        count     new_rcpt
    new_recipients_24h        24h       count     new_rcpt
    distinct_recipients       lifetime  distinct  -
    changes_24h               24h       count     change
    url_sms_24h               24h       count     url_out
    calls_out_1h              1h        count     call_out
    calls_out_24h             24h       count     call_out
    a2p_in_24h                24h       count     a2p_in
    one_way_share_24h         24h       share     -
    stranger_share_24h        24h       share     -
    url_share_lb_24h          24h       share     -
    no_sim_return_24h         24h       ratio     -
""",
}


def _rows(table: str) -> tuple[Feature, ...]:
    out = []
    for line in table.strip().splitlines():
        name, window, kind, counter = line.split()
        if kind not in get_args(Kind) or window not in (*WINDOW_NAMES, "lifetime", "now", "change"):
            raise ValueError(f"catalogue row {name}: unknown kind {kind!r} or window {window!r}")
        out.append(Feature(name, window, cast(Kind, kind), (counter, window) if kind == "count" else None))
    return tuple(out)


FEATURES: dict[EntityKind, tuple[Feature, ...]] = {kind: _rows(table) for kind, table in _TABLE.items()}

# set by the engine (from the policy's modem TACs), after the record's features
ENGINE_FEATURES: tuple[Feature, ...] = (Feature("modem_device", "now", "engine"),)

# the rate channels the burst-aware detectors watch, in their order: ``<channel>_<window>`` counts
BURST: dict[EntityKind, tuple[str, ...]] = {
    "number": ("sms_out", "call_out", "new_recipients", "url_sms", "unanswered", "a2p_in"),
    "device": ("out", "new_imsis", "new_numbers", "new_recipients", "url_sms", "calls_out", "a2p_in"),
}


# features the rules read and the models do not: a gate's count whose distribution is nearly all
# zero tells a model nothing a rule does not, and leaving it out keeps the models' vector (and so
# Half-Space Trees' splits, drawn over the sorted feature names) what it was
RULE_ONLY: frozenset[str] = frozenset({"link_runs_24h", "history_at_change_h", "strangers_per_link_run_24h"})


def for_models(features: dict[str, float]) -> dict[str, float]:
    """``features`` without the ``RULE_ONLY`` ones: what the detectors and the feedback learner see."""
    x = None
    for name in RULE_ONLY:
        if name in features:
            if x is None:
                x = dict(features)       # a copy at C speed: the caller's dict keeps what the rules read
            del x[name]
    return features if x is None else x


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
