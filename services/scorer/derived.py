"""The features of a record: every catalogue feature that is not a plain count, as a formula.

``number_features``/``device_features`` read a record (the unpacked list of ``layout``'s
``NUMBER``/``DEVICE``) at its watermark and return the catalogue's features in table order: a
``count`` is its record slot, anything else its formula in ``DERIVED`` (every feature: larger =
more suspicious; legitimacy evidence is written as its absence, 1.0 = none). ``_fastcore.c``
computes the same (``features.FEATURE_SIGNATURE``); the record update is ``features``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from services.scorer.catalogue import FEATURES, WINDOW_NAMES, EntityKind
from services.scorer.change_tail import T_CELLS, T_CODES, T_KNOWN_OUT, T_LINKS, T_NEW_OUT
from services.scorer.layout import (
    ACTIVATED_S,
    CHG_HAD_CELLS,
    CHG_HAD_RCPTS,
    CHG_SAW_NEW,
    CHG_SAW_OLD,
    DEVICE,
    DEVICE_CHANGED_S,
    EVICTED,
    FIRST_S,
    FORWARDING_BITS,
    LAST_MS,
    LINE_MASK,
    LINE_RECYCLED,
    LINK_RUN_FORGET_S,
    LINK_RUN_ONE,
    LINK_RUN_TAU_S,
    LINK_RUN_TIME_MASK,
    LINK_RUNS,
    NUMBER,
    ON_NET,
    SIM_CHANGED_S,
    Layout,
)
from services.scorer.record import current, set_size, sketch_estimate

# record indices of the counters (window 5m at +0, 1h at +1, 24h at +2) and sets

_NUM = NUMBER.counter_at
_N_SMS_OUT, _N_SMS_IN, _N_CALL_OUT, _N_CALL_IN = _NUM["sms_out"], _NUM["sms_in"], _NUM["call_out"], _NUM["call_in"]
_N_URL, _N_NEW_RCPT, _N_NIGHT = _NUM["url_out"], _NUM["new_rcpt"], _NUM["night_out"]
_N_SHORT, _N_UNANS, _N_NEW_CELL, _N_A2P = _NUM["short_call"], _NUM["unanswered"], _NUM["new_cell"], _NUM["a2p_in"]
_N_REPLY, _N_BURST = _NUM["reply_in"], _NUM["burst_sms"]
_N_RCPT_SET, _N_CELL_SET = NUMBER.set_at["rcpt"], NUMBER.set_at["cell"]
_T_RUNS = NUMBER.tail_at + LINK_RUNS
_DEV = DEVICE.counter_at
_D_OUT, _D_NEW_IMSI, _D_NEW_NUMBER = _DEV["out"], _DEV["new_imsi"], _DEV["new_number"]
_D_NEW_CELL, _D_NEW_RCPT, _D_CHANGE = _DEV["new_cell"], _DEV["new_rcpt"], _DEV["change"]
_D_URL, _D_CALL, _D_A2P, _D_REPLY = _DEV["url_out"], _DEV["call_out"], _DEV["a2p_in"], _DEV["reply_in"]
_D_IMSI_BACK = _DEV["imsi_back"]
_D_RCPT_SET, _D_IMSI_SET = DEVICE.set_at["rcpt"], DEVICE.set_at["imsi"]
_D_NUMBER_SET, _D_CELL_SET = DEVICE.set_at["number"], DEVICE.set_at["cell"]


def _share(part: float, whole: float) -> float:
    # two pseudo-events in the denominator: one URL SMS is not a "100 % URL" sender
    return part / (whole + 2.0)


def _one_way(replies: float, out: float) -> float:
    """1 - replies per message sent (two pseudo-messages): 1.0 for a sender nobody answers."""
    return 1.0 - min(1.0, replies / (out + 2.0))


def _strangers(new: float, out: float) -> float:
    """Share of contacts that were not returning recipients, two pseudo-contacts counted as new:
    1.0 for an entity that never contacted anyone twice (no returning-recipient evidence)."""
    return min(1.0, (new + 2.0) / (out + 2.0))


_Z95 = 1.959963984540054     # two-sided 95 % normal quantile


def _paced(burst: float, sms: float) -> float:
    """1 - the share of SMS sent in a run (two pseudo-messages): 1.0 for a number that never ran."""
    return 1.0 - min(1.0, burst / (sms + 2.0))


def _device_sms(v: Sequence[float]) -> float:
    """A device's SMS of the day: its originated events less its calls. Never below 0: a
    stored record whose counters disagree (restored from a damaged state) gives no SMS, not a
    negative count that divides by zero."""
    return max(0.0, v[_D_OUT + 2] - v[_D_CALL + 2])


def _share_lower_bound(part: float, whole: float) -> float:
    """Wilson score lower bound (95 %) of part/whole: a share that small samples cannot fake.

    A business texting customers with 15 % links shows 5 of 9 (0.56) by chance in its first
    hour; the bound is 0.27 there, and 0.41 for a farm's 6 of 8.
    """
    if whole <= 0.0:
        return 0.0
    p = min(max(part / whole, 0.0), 1.0)
    z2 = _Z95 * _Z95
    centre = p + z2 / (2.0 * whole)
    # a whole below ~1e-162 (a lone SMS decayed over a year) squares to 0: +inf there, as C's division
    square = 4.0 * whole * whole
    spread = _Z95 * math.sqrt(p * (1.0 - p) / whole + (z2 / square if square else math.inf))
    return max(0.0, (centre - spread) / (1.0 + z2 / whole))


def _recency(now_s: int, then_s: float, scale_s: float) -> float:
    if not then_s or then_s > now_s + 60:
        return 0.0
    return math.exp(-(now_s - then_s) / scale_s)


def _distinct(values: list[float], sketch_at: int, bounds: tuple[int, int]) -> float:
    """Distinct recipients: exact from the recent set until it overflowed, then the sketch."""
    return sketch_estimate(values, sketch_at) if int(values[EVICTED]) & 1 else float(set_size(values, bounds))


def _now_s(v: list[float]) -> int:
    return int(v[LAST_MS]) // 1000


def _observed_h(v: list[float]) -> float:
    return (_now_s(v) - v[FIRST_S]) / 3600.0 if v[FIRST_S] else 0.0


Formula = Callable[[list[float]], float]


CHANGE_WINDOW_S = 86_400   # the change-tail features speak for a day after the change


def _since_change(v: list[float]) -> bool:
    """Was the latest SIM or device change within ``CHANGE_WINDOW_S`` of the watermark?"""
    change = max(int(v[SIM_CHANGED_S]), int(v[DEVICE_CHANGED_S]))
    return bool(change) and -60 <= _now_s(v) - change <= CHANGE_WINDOW_S


def _recent(v: list[float], at: int) -> bool:
    return bool(v[at]) and -60 <= _now_s(v) - int(v[at]) <= CHANGE_WINDOW_S


def _tail(at: int) -> Formula:
    return lambda v: float(v[at]) if _since_change(v) else 0.0


def _new_area(v: list[float]) -> float:
    """1: since the change the number was only seen on cells it had never used, and it had some."""
    cells = int(v[T_CELLS])
    return 1.0 if _since_change(v) and cells & CHG_HAD_CELLS and cells & CHG_SAW_NEW and not cells & CHG_SAW_OLD \
        else 0.0


def _contacts_quiet(v: list[float]) -> float:
    """1: since the change it contacted only never-contacted numbers, none of the ones it had."""
    return 1.0 if (_since_change(v) and int(v[T_CELLS]) & CHG_HAD_RCPTS and v[T_NEW_OUT] >= 1
                   and v[T_KNOWN_OUT] == 0) else 0.0


def _new_contact_rate(v: list[float]) -> float:
    """Never-contacted numbers contacted since the change per hour since it, one pseudo-hour in the
    denominator: a takeover uses the line at once, in the hours before the victim notices their
    phone has no signal; an owner's new contacts come at the pace of ordinary life over the day."""
    if not _since_change(v):
        return 0.0
    change = max(int(v[SIM_CHANGED_S]), int(v[DEVICE_CHANGED_S]))
    hours = max(0, _now_s(v) - change) / 3600.0
    return float(v[T_NEW_OUT]) / (hours + 1.0)


def _link_runs(v: list[float]) -> float:
    """Runs of link SMS to never-contacted recipients (``features.link_run``), decayed over a day
    to the watermark; 0 once the latest one is more than ``LINK_RUN_FORGET_S`` before it. The
    update keeps the latest run at most that far behind the watermark (``features.link_runs_forget``),
    so its 24-bit time read back from the watermark is exact."""
    packed = int(v[_T_RUNS])
    gap = (_now_s(v) - packed) & LINK_RUN_TIME_MASK
    if gap > LINK_RUN_FORGET_S:
        return 0.0
    return (packed >> 24) / LINK_RUN_ONE * math.exp(-gap / LINK_RUN_TAU_S)


def _strangers_per_link_run(v: list[float]) -> float:
    """The day's never-contacted recipients per run of links to them (at least one run): how long
    a run is. An announcement's run is as long as its list, and announcements repeated to a list
    longer than the 16 recent recipients re-count its members once per run, not more; a run that
    never ends grows without bound."""
    return v[_N_NEW_RCPT + 2] / max(1.0, _link_runs(v))


def _takeover_evidence(v: list[float]) -> float:
    """How many of the five takeover signals hold: new SIM, new device, new area, one-time codes
    received, usual contacts quiet (each a day after the change at most)."""
    if not _since_change(v):
        return 0.0
    return (float(_recent(v, SIM_CHANGED_S)) + float(_recent(v, DEVICE_CHANGED_S)) + _new_area(v)
            + float(v[T_CODES] >= 1) + _contacts_quiet(v))


def _history_at_change(v: list[float]) -> float:
    """Hours the number had been observed (since ``FIRST_S``) when its latest change came, while
    the change tail speaks (0 otherwise): how much the "never-contacted" and "cells it never used"
    of the tail can say. A record a few hours old has seen a fraction of its owner's contacts and
    places, so nearly everything it does after a change reads as new."""
    if not _since_change(v) or not v[FIRST_S]:
        return 0.0
    change = max(int(v[SIM_CHANGED_S]), int(v[DEVICE_CHANGED_S]))
    return max(0.0, change - v[FIRST_S]) / 3600.0


_UNCONDITIONAL = FORWARDING_BITS["unconditional"]


def _forwarding_near_change(v: list[float]) -> float:
    """1: unconditional call forwarding is set and the latest SIM/device change is at most a day
    old. Only unconditional forwarding: the conditional kinds (busy, no answer, not reachable) are
    how voicemail is provisioned on most lines, so nearly every honest owner has them."""
    return 1.0 if int(v[EVICTED]) & _UNCONDITIONAL and _since_change(v) else 0.0


def _recycled_recent(v: list[float]) -> float:
    """1: the number was reassigned (a new subscription after a cease) at most a day ago."""
    return 1.0 if int(v[EVICTED]) & LINE_MASK == LINE_RECYCLED and _recent(v, ACTIVATED_S) else 0.0


# the formulas of the catalogue's features that are not a plain count (every feature: larger =
# more suspicious); ``v`` is the record with its counters at the watermark (``current``)
DERIVED: dict[str, dict[str, Formula]] = {
    "number": {
        "new_recipient_share_1h": lambda v: _share(v[_N_NEW_RCPT + 1], v[_N_SMS_OUT + 1] + v[_N_CALL_OUT + 1]),
        "new_recipient_share_24h": lambda v: _share(v[_N_NEW_RCPT + 2], v[_N_SMS_OUT + 2] + v[_N_CALL_OUT + 2]),
        "distinct_recipients": lambda v: _distinct(v, NUMBER.sketch_at, _N_RCPT_SET),
        "url_share_1h": lambda v: _share(v[_N_URL + 1], v[_N_SMS_OUT + 1]),
        "url_share_24h": lambda v: _share(v[_N_URL + 2], v[_N_SMS_OUT + 2]),
        "url_share_lb_24h": lambda v: _share_lower_bound(v[_N_URL + 2], v[_N_SMS_OUT + 2]),
        "out_in_ratio_24h": lambda v: ((v[_N_SMS_OUT + 2] + v[_N_CALL_OUT + 2] + 1.0)
                                       / (v[_N_SMS_IN + 2] + v[_N_CALL_IN + 2] + 1.0)),
        "night_share_24h": lambda v: _share(v[_N_NIGHT + 2], v[_N_SMS_OUT + 2] + v[_N_CALL_OUT + 2]),
        "short_call_share_1h": lambda v: _share(v[_N_SHORT + 1], v[_N_CALL_OUT + 1]),
        "unanswered_share_1h": lambda v: _share(v[_N_UNANS + 1], v[_N_CALL_OUT + 1]),
        "observed_h": _observed_h,
        "sim_change_recency": lambda v: _recency(_now_s(v), v[SIM_CHANGED_S], 86_400.0),
        "device_change_recency": lambda v: _recency(_now_s(v), v[DEVICE_CHANGED_S], 86_400.0),
        "sim_newness": lambda v: _recency(_now_s(v), v[ACTIVATED_S], 7 * 86_400.0),
        "off_net": lambda v: 0.0 if int(v[EVICTED]) & ON_NET else 1.0,
        "one_way_share_24h": lambda v: _one_way(v[_N_REPLY + 2], v[_N_SMS_OUT + 2] + v[_N_CALL_OUT + 2]),
        "stranger_share_24h": lambda v: _strangers(v[_N_NEW_RCPT + 2], v[_N_SMS_OUT + 2] + v[_N_CALL_OUT + 2]),
        "new_contacts_since_change": _tail(T_NEW_OUT),
        "link_contacts_since_change": _tail(T_LINKS),
        "codes_since_change": _tail(T_CODES),
        "new_area_since_change": _new_area,
        "contacts_quiet_since_change": _contacts_quiet,
        "takeover_evidence": _takeover_evidence,
        "forwarding_near_change": _forwarding_near_change,
        "recycled_recent": _recycled_recent,
        "paced_share_24h": lambda v: _paced(v[_N_BURST + 2], v[_N_SMS_OUT + 2]),
        "new_contact_rate_since_change": _new_contact_rate,
        "link_runs_24h": _link_runs,
        "history_at_change_h": _history_at_change,
        "strangers_per_link_run_24h": _strangers_per_link_run,
    },
    "device": {
        "url_share_1h": lambda v: _share(v[_D_URL + 1], v[_D_OUT + 1]),
        "url_share_24h": lambda v: _share(v[_D_URL + 2], _device_sms(v)),
        "new_recipient_share_24h": lambda v: _share(v[_D_NEW_RCPT + 2], v[_D_OUT + 2]),
        "observed_h": _observed_h,
        "distinct_imsis": lambda v: float(set_size(v, _D_IMSI_SET)),
        "distinct_numbers": lambda v: float(set_size(v, _D_NUMBER_SET)),
        "distinct_recipients": lambda v: _distinct(v, DEVICE.sketch_at, _D_RCPT_SET),
        "one_way_share_24h": lambda v: _one_way(v[_D_REPLY + 2], v[_D_OUT + 2]),
        "stranger_share_24h": lambda v: _strangers(v[_D_NEW_RCPT + 2], v[_D_OUT + 2]),
        "url_share_lb_24h": lambda v: _share_lower_bound(v[_D_URL + 2], _device_sms(v)),
        "no_sim_return_24h": lambda v: 1.0 / (1.0 + v[_D_IMSI_BACK + 2]),
    },
}


def _plan(entity_type: EntityKind, layout: Layout) -> tuple[tuple[str, int, Formula | None], ...]:
    """The catalogue's features of ``entity_type`` as (name, record index of a count, formula)."""
    windows = {name: i for i, name in enumerate(WINDOW_NAMES)}
    plan: list[tuple[str, int, Formula | None]] = []
    for feature in FEATURES[entity_type]:
        if feature.slot is not None:
            counter, window = feature.slot
            plan.append((feature.name, layout.counter_at[counter] + windows[window], None))
        else:
            plan.append((feature.name, -1, DERIVED[entity_type][feature.name]))
    return tuple(plan)


_NUMBER_PLAN = _plan("number", NUMBER)
_DEVICE_PLAN = _plan("device", DEVICE)


def _features(v: list[float], plan: tuple[tuple[str, int, Formula | None], ...]) -> dict[str, float]:
    return {name: v[at] if formula is None else formula(v) for name, at, formula in plan}


def number_features(values: list[float]) -> dict[str, float]:
    """The number's features at its watermark, in catalogue order."""
    return _features(current(values, NUMBER), _NUMBER_PLAN)


def device_features(values: list[float]) -> dict[str, float]:
    """The device's features at its watermark, in catalogue order."""
    return _features(current(values, DEVICE), _DEVICE_PLAN)
