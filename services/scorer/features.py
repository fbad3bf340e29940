"""Per-entity feature state on event time: packed, order-independent, ~300 bytes per entity.

Each tracked number or device is one ``bytes`` value (``struct``-packed) in a dict keyed by
the 16-byte pseudonym. A view is applied by unpacking it into a list, updating it with the pure
function ``apply_number``/``apply_device`` and packing it back — ``apply_view`` end to end, which
``_fastcore.c`` implements in C with bit-identical results (``COMPILED_APPLY``; the engine uses
it when built and falls back to ``apply_view``). The sweep's one pass over a table,
``scan_records``, has its C twin there too (``COMPILED_SCAN``).

Windows are exponentially decayed counts with time constants 5 min, 1 h and 24 h: with steady
traffic a counter equals the number of events in the last τ; a burst of N events is ≈N right
after it. They are stored *forward-decayed* (Cormode et al., "Forward decay", ICDE 2009): an
event at ``t`` adds ``exp((t - B)/τ)`` to its counter, where ``B`` is a per-entity base time,
and the count at the entity's watermark ``L`` is ``stored * exp(-(L - B)/τ)``. So a view
touches only its own counters (no decay pass over all of them), and the counts are
*order-independent*: a late or out-of-order event adds exactly what it would have in order,
however late it is; the grace period only bounds when an entity may be forgotten (``StateStore``
TTL). ``B`` moves forward (rescaling the counters) once ``L - B`` exceeds 40 x 5 min, long
before a float could overflow.

Distinct sets (recipients, cells, IMSIs, numbers on a device) are kept exactly in small
most-recently-used sets of 32-bit fingerprints of the pseudonyms (pseudonyms are HMAC outputs,
so their first bits are uniform); a recipient missing from the recent set is "never before
contacted". Lifetime distinct recipients is exact up to the set's capacity, then a 256-bit
linear-counting sketch. Nothing here holds a plaintext identifier.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from typing import Any

from services.common.records import View
from services.scorer.catalogue import FEATURES, WINDOW_NAMES, EntityKind, record_features
from services.scorer.layout import (
    ACTIVATED_S,
    BASE_MS,
    CHG_CELLS,
    CHG_CODES,
    CHG_HAD_CELLS,
    CHG_HAD_RCPTS,
    CHG_KNOWN_OUT,
    CHG_LINKS,
    CHG_NEW_OUT,
    CHG_RCPT_HI,
    CHG_RCPT_LO,
    CHG_SAW_NEW,
    CHG_SAW_OLD,
    DEVICE,
    DEVICE_CHANGED_S,
    DEVICE_FP,
    EVICTED,
    FIRST_S,
    FLAG_EXPIRES_S,
    HEADER_FORMAT,
    LAST_MS,
    LINK_EXPIRES_S,
    LINK_TAIL_FORMAT,
    N_VIEWS,
    NUMBER,
    OFFSET,
    ON_NET,
    RISK_LEVEL,
    RISK_SCORE,
    SIM_CHANGED_S,
    TAC,
    TAUS,
    Layout,
)
from services.scorer.record import (
    add,
    advance,
    current,
    fp32,
    fp64,
    known,
    remember,
    set_size,
    sketch_add,
    sketch_estimate,
)

_EXP = math.exp
_TAU_1H, _TAU_24H = TAUS[1], TAUS[2]


def _start(values: list[float], view: View) -> list[float]:
    t_s = view.occurred_ms // 1000
    if not values[FIRST_S] or t_s < values[FIRST_S]:
        values[FIRST_S] = t_s
    values[N_VIEWS] += 1
    return values


_NUM = NUMBER.counter_at
_N_SMS_OUT, _N_SMS_IN, _N_CALL_OUT, _N_CALL_IN = _NUM["sms_out"], _NUM["sms_in"], _NUM["call_out"], _NUM["call_in"]
_N_URL, _N_NEW_RCPT, _N_NIGHT = _NUM["url_out"], _NUM["new_rcpt"], _NUM["night_out"]
_N_SHORT, _N_UNANS, _N_NEW_CELL, _N_A2P = _NUM["short_call"], _NUM["unanswered"], _NUM["new_cell"], _NUM["a2p_in"]
_N_REPLY = _NUM["reply_in"]
_N_RCPT_SET, _N_CELL_SET = NUMBER.set_at["rcpt"], NUMBER.set_at["cell"]


_TAC_MAX = 2**32 - 1   # a TAC is 8 digits; a longer digit string is not one (and would not pack)


def _set_tac(values: list[float], tac: str | None) -> None:
    if tac is not None and tac.isdigit():
        number = int(tac)
        if number <= _TAC_MAX:
            values[TAC] = number


_T = NUMBER.tail_at
_T_NEW_OUT, _T_KNOWN_OUT, _T_CODES, _T_LINKS, _T_CELLS = (_T + CHG_NEW_OUT, _T + CHG_KNOWN_OUT, _T + CHG_CODES,
                                                         _T + CHG_LINKS, _T + CHG_CELLS)
_T_RCPT_LO, _T_RCPT_HI = _T + CHG_RCPT_LO, _T + CHG_RCPT_HI
CHANGE_MERGE_S = 3600   # a change within this of the previous one is the same change (swap, then the new phone)


def _bump(values: list[float], at: int) -> None:
    values[at] = min(255, int(values[at]) + 1)


def _slots(mask: int, pos: int, full: int) -> int:
    """A most-recently-used set's mask of "held before the change" slots after the set moved:
    ``pos`` -1 = a new entry went in front (every slot moves down one, the last drops out), else
    the entry at ``pos`` moved to the front."""
    if pos < 0:
        return (mask << 1) & full
    bit = (mask >> pos) & 1
    lower = mask & ((1 << pos) - 1)
    return (mask & ~((1 << (pos + 1)) - 1) & full) | (lower << 1) | bit


def _position(values: list[float], bounds: tuple[int, int], fingerprint: int) -> int:
    """Where ``fingerprint`` sits in the set (-1: not in it)."""
    recent = values[bounds[0]:bounds[1]]
    return recent.index(fingerprint) if fingerprint in recent else -1


def apply_number(values: list[float], view: View, is_night: bool, short_call_s: float,  # noqa: PLR0917
                 a2p_senders: frozenset[str] = frozenset(), code_senders: frozenset[str] = frozenset()) -> None:
    """Update a number's state with one of its views (pure except for ``values``).

    ``code_senders``: pseudonyms of the one-time-code senders (the registry's code categories);
    SMS from them count in the change tail, with what the number did since its latest change."""
    _start(values, view)
    t_ms = view.occurred_ms
    weights = advance(values, NUMBER, t_ms)
    role = view.role
    t_s = t_ms // 1000
    before_change = max(int(values[SIM_CHANGED_S]), int(values[DEVICE_CHANGED_S]))
    rcpt_pos = -2           # an out view's recipient: -1 never contacted, else its slot in the set before
    link = False
    code = False
    if role == "out":
        if view.type == "sms":
            add(values, _N_SMS_OUT, weights)
            if view.sms is not None and view.sms.has_url:
                add(values, _N_URL, weights)
                link = True
        else:
            add(values, _N_CALL_OUT, weights)
            call = view.call
            if call is not None:
                if not call.answered:
                    add(values, _N_UNANS, weights)
                elif call.duration_s < short_call_s:
                    add(values, _N_SHORT, weights)
        if is_night:
            add(values, _N_NIGHT, weights)
        if view.peer is not None:
            fingerprint = fp32(view.peer)
            rcpt_pos = _position(values, _N_RCPT_SET, fingerprint)
            if remember(values, _N_RCPT_SET, fingerprint):
                add(values, _N_NEW_RCPT, weights)
            sketch_add(values, NUMBER.sketch_at, fingerprint)
    elif role == "in":
        if view.type == "sms":
            add(values, _N_SMS_IN, weights)
            if view.peer_kind in ("alphanumeric", "short_code") or view.peer in a2p_senders:
                add(values, _N_A2P, weights)
            code = view.peer is not None and view.peer in code_senders
        else:
            add(values, _N_CALL_IN, weights)
        if view.peer is not None and known(values, _N_RCPT_SET, fp32(view.peer)):
            add(values, _N_REPLY, weights)      # a reply or call-back from a recent recipient
    else:  # change
        sim = view.sim
        if sim is not None:
            if sim.change in ("swap", "port_in"):
                values[SIM_CHANGED_S] = max(int(values[SIM_CHANGED_S]), t_s)
            elif sim.change == "activation":
                values[ACTIVATED_S] = max(int(values[ACTIVATED_S]), t_s)
            elif sim.change == "device_change":
                values[DEVICE_CHANGED_S] = max(int(values[DEVICE_CHANGED_S]), t_s)
    cell_pos = -2           # -2: no cell; -1: a new cell; else its slot in the set before this view
    if view.cell is not None:
        fingerprint = fp32(view.cell)
        cell_pos = _position(values, _N_CELL_SET, fingerprint)
        if remember(values, _N_CELL_SET, fingerprint):
            add(values, _N_NEW_CELL, weights)
    if view.subscriber:
        values[EVICTED] = int(values[EVICTED]) | ON_NET
    if view.device is not None and t_ms >= values[LAST_MS]:
        device = fp64(view.device)
        held = int(values[DEVICE_FP])
        if held and held != device and role != "change":
            # a different handset under the same number: a device swap seen on traffic
            values[DEVICE_CHANGED_S] = max(int(values[DEVICE_CHANGED_S]), t_s)
        values[DEVICE_FP] = device
    _set_tac(values, view.tac)
    _change_tail(values, before_change, rcpt_pos, link, code, cell_pos)


def _occupied(values: list[float], bounds: tuple[int, int]) -> int:
    return sum(1 << k for k in range(bounds[1] - bounds[0]) if values[bounds[0] + k])


def _change_tail(values: list[float], before_change: int, rcpt_pos: int, link: bool, code: bool,  # noqa: PLR0917
                 cell_pos: int) -> None:
    """The change tail: a new change (not within ``CHANGE_MERGE_S`` of the previous one) starts
    it afresh, everything the cell and recipient sets hold then counting as "before" (the masks
    follow those slots as the sets move); then this view counts as one after it. ``rcpt_pos`` and
    ``cell_pos``: -2 none, -1 new to the set, else the slot it was in before this view. A number
    that never changed keeps the tail at zero."""
    change = max(int(values[SIM_CHANGED_S]), int(values[DEVICE_CHANGED_S]))
    if not change:
        return
    cells = int(values[_T_CELLS])
    mask = cells & 15
    rmask = int(values[_T_RCPT_LO]) | int(values[_T_RCPT_HI]) << 8
    if cell_pos != -2:
        mask = _slots(mask, cell_pos, 15)
    if rcpt_pos != -2:
        rmask = _slots(rmask, rcpt_pos, 0xFFFF)
    if change > before_change and (not before_change or change - before_change > CHANGE_MERGE_S):
        values[_T_NEW_OUT] = values[_T_KNOWN_OUT] = values[_T_CODES] = values[_T_LINKS] = 0
        mask = _occupied(values, _N_CELL_SET) & (~1 if cell_pos == -1 else 15)   # this view's new cell: after
        rmask = _occupied(values, _N_RCPT_SET) & (~1 if rcpt_pos == -1 else 0xFFFF)
        cells = (CHG_HAD_CELLS if mask else 0) | (CHG_HAD_RCPTS if rmask else 0)
    if cell_pos == -1:
        cells |= CHG_SAW_NEW
    elif cell_pos >= 0 and mask & 1:
        cells |= CHG_SAW_OLD
    values[_T_CELLS] = (cells & ~15) | mask
    values[_T_RCPT_LO], values[_T_RCPT_HI] = rmask & 255, rmask >> 8
    if rcpt_pos == -1:
        _bump(values, _T_NEW_OUT)
        if link:
            _bump(values, _T_LINKS)
    elif rcpt_pos >= 0 and rmask & 1:
        _bump(values, _T_KNOWN_OUT)
    if code:
        _bump(values, _T_CODES)


_DEV = DEVICE.counter_at
_D_OUT, _D_NEW_IMSI, _D_NEW_NUMBER = _DEV["out"], _DEV["new_imsi"], _DEV["new_number"]
_D_NEW_CELL, _D_NEW_RCPT, _D_CHANGE = _DEV["new_cell"], _DEV["new_rcpt"], _DEV["change"]
_D_URL, _D_CALL, _D_A2P, _D_REPLY = _DEV["url_out"], _DEV["call_out"], _DEV["a2p_in"], _DEV["reply_in"]
_D_RCPT_SET, _D_IMSI_SET = DEVICE.set_at["rcpt"], DEVICE.set_at["imsi"]
_D_NUMBER_SET, _D_CELL_SET = DEVICE.set_at["number"], DEVICE.set_at["cell"]


def apply_device(values: list[float], view: View, a2p_senders: frozenset[str] = frozenset()) -> None:
    """Update a device's state with one of its views (``a2p_senders``: pseudonyms of A2P senders)."""
    _start(values, view)
    weights = advance(values, DEVICE, view.occurred_ms)
    if not values[DEVICE_FP]:
        values[DEVICE_FP] = fp64(view.entity)
    if view.role == "in":
        if view.type == "sms" and view.peer is not None and view.peer in a2p_senders:
            add(values, _D_A2P, weights)
        if view.peer is not None and known(values, _D_RCPT_SET, fp32(view.peer)):
            add(values, _D_REPLY, weights)
    elif view.role == "out":
        add(values, _D_OUT, weights)
        if view.type == "call":
            add(values, _D_CALL, weights)
        elif view.sms is not None and view.sms.has_url:
            add(values, _D_URL, weights)
        if view.peer is not None:
            fingerprint = fp32(view.peer)
            if remember(values, _D_RCPT_SET, fingerprint):
                add(values, _D_NEW_RCPT, weights)
            sketch_add(values, DEVICE.sketch_at, fingerprint)
    elif view.role == "change":
        add(values, _D_CHANGE, weights)
    if view.imsi is not None and remember(values, _D_IMSI_SET, fp32(view.imsi)):
        add(values, _D_NEW_IMSI, weights)
    if view.number is not None and remember(values, _D_NUMBER_SET, fp32(view.number)):
        add(values, _D_NEW_NUMBER, weights)
    if view.cell is not None and remember(values, _D_CELL_SET, fp32(view.cell)):
        add(values, _D_NEW_CELL, weights)
    _set_tac(values, view.tac)


def _share(part: float, whole: float) -> float:
    # two pseudo-events in the denominator: one URL SMS is not a "100 % URL" sender
    return part / (whole + 2.0)


def _one_way(replies: float, out: float) -> float:
    """1 - replies per message sent (two pseudo-messages): 1.0 for a sender nobody answers."""
    return 1.0 - min(1.0, replies / (out + 2.0))


_Z95 = 1.959963984540054     # two-sided 95 % normal quantile


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
    spread = _Z95 * math.sqrt(p * (1.0 - p) / whole + z2 / (4.0 * whole * whole))
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
    cells = int(v[_T_CELLS])
    return 1.0 if _since_change(v) and cells & CHG_HAD_CELLS and cells & CHG_SAW_NEW and not cells & CHG_SAW_OLD \
        else 0.0


def _contacts_quiet(v: list[float]) -> float:
    """1: since the change it contacted only never-contacted numbers, none of the ones it had."""
    return 1.0 if (_since_change(v) and int(v[_T_CELLS]) & CHG_HAD_RCPTS and v[_T_NEW_OUT] >= 1
                   and v[_T_KNOWN_OUT] == 0) else 0.0


def _takeover_evidence(v: list[float]) -> float:
    """How many of the five takeover signals hold: new SIM, new device, new area, one-time codes
    received, usual contacts quiet (each a day after the change at most)."""
    if not _since_change(v):
        return 0.0
    return (float(_recent(v, SIM_CHANGED_S)) + float(_recent(v, DEVICE_CHANGED_S)) + _new_area(v)
            + float(v[_T_CODES] >= 1) + _contacts_quiet(v))


Formula = Callable[[list[float]], float]
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
        "new_contacts_since_change": _tail(_T_NEW_OUT),
        "link_contacts_since_change": _tail(_T_LINKS),
        "codes_since_change": _tail(_T_CODES),
        "new_area_since_change": _new_area,
        "contacts_quiet_since_change": _contacts_quiet,
        "takeover_evidence": _takeover_evidence,
    },
    "device": {
        "url_share_1h": lambda v: _share(v[_D_URL + 1], v[_D_OUT + 1]),
        "url_share_24h": lambda v: _share(v[_D_URL + 2], v[_D_OUT + 2] - v[_D_CALL + 2]),
        "new_recipient_share_24h": lambda v: _share(v[_D_NEW_RCPT + 2], v[_D_OUT + 2]),
        "observed_h": _observed_h,
        "distinct_imsis": lambda v: float(set_size(v, _D_IMSI_SET)),
        "distinct_numbers": lambda v: float(set_size(v, _D_NUMBER_SET)),
        "distinct_recipients": lambda v: _distinct(v, DEVICE.sketch_at, _D_RCPT_SET),
        "one_way_share_24h": lambda v: _one_way(v[_D_REPLY + 2], v[_D_OUT + 2]),
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


def out_activity(values: list[float], layout: Layout) -> float:
    """How much the entity originated lately (1h): the trigger for re-scoring the models."""
    gap = int(values[LAST_MS]) - int(values[BASE_MS])
    f1 = _EXP(-gap / _TAU_1H)
    if layout is NUMBER:
        return (values[_N_SMS_OUT + 1] + values[_N_CALL_OUT + 1] + values[_N_NEW_RCPT + 1]) * f1
    # a device's own first IMSI and number are not activity; further ones are
    f24 = _EXP(-gap / _TAU_24H)
    extra_ids = max(0.0, values[_D_NEW_IMSI + 2] * f24 - 1.0) + max(0.0, values[_D_NEW_NUMBER + 2] * f24 - 1.0)
    return values[_D_OUT + 1] * f1 + 4.0 * extra_ids


# -- one view, end to end (the engine's per-view entry; compiled in _fastcore.c) -------------------
# (0, risk_score) | (1, packed, now_ms) | (2, values, changed, activity, modem, features)
ApplyResult = tuple[Any, ...]


def apply_view(is_number: bool, packed: bytes | None, view: View, offset: int | None, night: bool,  # noqa: PLR0917 - _fastcore.apply's signature
               short_call_s: float, a2p_allow: frozenset[str], min_activity: float,
               modem_tacs: frozenset[int], protected: bool, code_senders: frozenset[str] = frozenset(),
               ) -> ApplyResult:
    """Unpack an entity's record, apply one view and decide whether the engine must look closer.

    Returns ``(0, risk_score)`` when ``offset`` was applied before (a replay), ``(1, packed,
    now_ms)`` for a quiet entity — unflagged, below ``min_activity``, no SIM/device change or
    activation in the last 24 h, not on a modem TAC, not ``protected`` (a do-not-originate
    number): it can fire no rule and is not scored, so its new record is all there is — and
    otherwise ``(2, values, changed, activity, modem, features)``: the unpacked list and the
    entity's features (``number_features``/``device_features``) for the rules and models. This is
    the reference for ``_fastcore.apply``, which must return exactly the same.
    """
    layout = NUMBER if is_number else DEVICE
    values = layout.unpack(packed) if packed is not None else layout.empty()
    if offset is not None and offset <= values[OFFSET]:
        return (0, int(values[RISK_SCORE]))
    before_sim, before_device = values[SIM_CHANGED_S], values[DEVICE_CHANGED_S]
    if is_number:
        apply_number(values, view, night, short_call_s, a2p_allow, code_senders)
    else:
        apply_device(values, view, a2p_allow)
    if offset is not None:
        values[OFFSET] = offset
    now_ms = int(values[LAST_MS])
    changed = values[SIM_CHANGED_S] != before_sim or values[DEVICE_CHANGED_S] != before_device
    activity = out_activity(values, layout)
    modem = int(values[TAC]) in modem_tacs
    if (activity < min_activity and not modem and not values[RISK_LEVEL] and not values[FLAG_EXPIRES_S]
            and now_ms // 1000 - max(values[SIM_CHANGED_S], values[DEVICE_CHANGED_S], values[ACTIVATED_S]) > 86_400
            and not protected):
        return (1, layout.pack(values), now_ms)
    return (2, values, changed, activity, modem, number_features(values) if is_number else device_features(values))


# -- the sweep's scan (compiled in _fastcore.c) -----------------------------------------------------
_LAST_MS = struct.Struct("<q")
_U32 = struct.Struct("<I")
FLAG_EXPIRES_OFFSET = struct.calcsize("<" + HEADER_FORMAT[:FLAG_EXPIRES_S])   # byte offset in a record
_LINK_EXPIRES_IN_TAIL = struct.calcsize("<" + LINK_TAIL_FORMAT[:LINK_EXPIRES_S])


def scan_records(is_number: bool, records: dict[bytes, bytes], idle_before_ms: int,
                 horizon_s: int) -> tuple[list[bytes], list[bytes]]:
    """One pass over a table for the sweep: ``(idle, expired)`` keys, in the dict's order.

    ``idle``: the latest event time is before ``idle_before_ms`` (the TTL forgets them);
    ``expired``: every other key whose flag expiry — or, for numbers, link-flag expiry — is set
    and before ``horizon_s``. The reference for ``_fastcore.scan``, which must return the same;
    at 1M entities this scan is all a sweep costs when nothing is due.
    """
    layout = NUMBER if is_number else DEVICE
    last_ms = _LAST_MS.unpack_from
    u32 = _U32.unpack_from
    flag_at = FLAG_EXPIRES_OFFSET
    link_at = layout.link_offset + _LINK_EXPIRES_IN_TAIL
    idle: list[bytes] = []
    expired: list[bytes] = []
    for key, packed in records.items():
        if last_ms(packed)[0] < idle_before_ms:
            idle.append(key)
        elif 0 < u32(packed, flag_at)[0] < horizon_s or (is_number and 0 < u32(packed, link_at)[0] < horizon_s):
            expired.append(key)
    return idle, expired


# what _fastcore.c was written against: a layout change here without the same change there
# disables the compiled update (tests/scorer/test_fastcore.py fails until both agree)
# the feature names the C computes, in order: the catalogue's (a mismatch disables the C as well)
FEATURE_SIGNATURE = {"number": record_features("number"), "device": record_features("device")}
LAYOUT_SIGNATURE = {
    "number": (NUMBER.struct.format[1:], NUMBER.counters, _N_RCPT_SET[0], _N_CELL_SET[0], NUMBER.sketch_at),
    "device": (DEVICE.struct.format[1:], DEVICE.counters, _D_RCPT_SET[0], _D_IMSI_SET[0], _D_NUMBER_SET[0],
               _D_CELL_SET[0], DEVICE.sketch_at),
}


def _compiled(name: str) -> Callable[..., Any] | None:
    """``_fastcore.<name>`` when built, matching this layout and not switched off by
    ``FRAUDRADAR_PURE_PYTHON=1``; None otherwise (the engine then runs the Python reference)."""
    if os.environ.get("FRAUDRADAR_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from services.scorer import _fastcore  # type: ignore[attr-defined]
    except ImportError:
        return None
    if _fastcore.LAYOUT_SIGNATURE != LAYOUT_SIGNATURE or _fastcore.FEATURE_SIGNATURE != FEATURE_SIGNATURE:
        return None
    return getattr(_fastcore, name, None)


COMPILED_APPLY: Callable[..., ApplyResult | None] | None = _compiled("apply")     # apply_view, compiled
COMPILED_SCAN: Callable[..., tuple[list[bytes], list[bytes]] | None] | None = _compiled("scan")  # scan_records
