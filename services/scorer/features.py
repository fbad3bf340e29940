"""Per-entity feature state on event time: packed, order-independent, ~400 bytes per entity.

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
TTL). One counter is not: ``burst_sms`` asks, when an SMS is applied, whether the 5-minute SMS
count already held ``BURST_PRIOR`` and the number's latest event was within ``RUN_GAP_MS``; for a
late SMS that count includes the SMS sent after it and the latest event is a later one, so out of
order a run's messages can be counted one more or one fewer (and an SMS more than ~62 h before
``B``, whose 5-minute weight underflows to 0, counts as in a run whenever any SMS is stored:
``_at_time``). ``B`` moves forward
(rescaling the counters) once ``L - B`` exceeds 40 x 5 min, long before a float could overflow.

Distinct sets (recipients, cells, IMSIs, numbers on a device) are kept exactly in small
most-recently-used sets of 32-bit fingerprints of the pseudonyms (pseudonyms are HMAC outputs,
so their first bits are uniform); a recipient missing from the recent set is "never before
contacted". Lifetime distinct recipients is exact up to the set's capacity, then a 256-bit
linear-counting sketch. Nothing here holds a plaintext identifier. The features computed from
a record are in ``derived``.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from typing import Any

from services.common.records import View
from services.scorer import change_tail
from services.scorer.catalogue import record_features
from services.scorer.derived import (
    _D_A2P,
    _D_CALL,
    _D_CELL_SET,
    _D_CHANGE,
    _D_IMSI_BACK,
    _D_IMSI_SET,
    _D_NEW_CELL,
    _D_NEW_IMSI,
    _D_NEW_NUMBER,
    _D_NEW_RCPT,
    _D_NUMBER_SET,
    _D_OUT,
    _D_RCPT_SET,
    _D_REPLY,
    _D_URL,
    _N_A2P,
    _N_BURST,
    _N_CALL_IN,
    _N_CALL_OUT,
    _N_CELL_SET,
    _N_NEW_CELL,
    _N_NEW_RCPT,
    _N_NIGHT,
    _N_RCPT_SET,
    _N_REPLY,
    _N_SHORT,
    _N_SMS_IN,
    _N_SMS_OUT,
    _N_UNANS,
    _N_URL,
)

# the features of a record, computed in ``derived``; re-exported: the engine reads them from here
from services.scorer.derived import device_features as device_features  # noqa: PLC0414
from services.scorer.derived import number_features as number_features  # noqa: PLC0414
from services.scorer.layout import (
    ACTIVATED_S,
    BASE_MS,
    DEVICE,
    DEVICE_CHANGED_S,
    DEVICE_FP,
    EVICTED,
    FIRST_S,
    FLAG_EXPIRES_S,
    FORWARDING_BITS,
    FORWARDING_MASK,
    HEADER_FORMAT,
    LAST_MS,
    LINE_ACTIVE,
    LINE_CEASED,
    LINE_MASK,
    LINE_RECYCLED,
    LINE_STATE_MASK,
    LINK_EXPIRES_S,
    LINK_RUN_FORGET_S,
    LINK_RUN_ONE,
    LINK_RUN_TAU_S,
    LINK_RUN_TIME_MASK,
    LINK_RUNS,
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
from services.scorer.record import add, advance, fp32, fp64, known, remember, sketch_add

_EXP = math.exp
# an SMS counts in ``burst_sms`` when the number's 5-minute SMS count already holds this much before
# it (another SMS within the last half minute, or several within minutes) ...
BURST_PRIOR = 0.9
# ... and the number's previous event is at most this far from it: a list sent in one go goes out
# seconds apart; a stream kept up for hours, one SMS a minute or more apart, is paced, not a run
RUN_GAP_MS = 30_000
# link runs (``layout.LINK_RUNS``): a link SMS to a never-contacted recipient more than RUN_GAP_S
# after the previous one starts a run; the runs are counted decayed over a day
RUN_GAP_S = RUN_GAP_MS // 1000
_RUN_TIME_HALF = (LINK_RUN_TIME_MASK + 1) // 2
_T_RUNS = NUMBER.tail_at + LINK_RUNS
_TAU_1H, _TAU_24H = TAUS[1], TAUS[2]


def _start(values: list[float], view: View) -> list[float]:
    t_s = view.occurred_ms // 1000
    if not values[FIRST_S] or t_s < values[FIRST_S]:
        values[FIRST_S] = t_s
    values[N_VIEWS] += 1
    return values


_TAC_MAX = 2**32 - 1   # a TAC is 8 digits; a longer digit string is not one (and would not pack)


def _set_tac(values: list[float], tac: str | None) -> None:
    if tac is not None and tac.isdigit():
        number = int(tac)
        if number <= _TAC_MAX:
            values[TAC] = number


def _at_time(stored: float, weight: float) -> float:
    """A forward-decayed count at an event's time: ``stored / weight``, as C's IEEE division gives
    it. The weight of a view more than ~62 h before the base underflows to 0 for the 5-minute
    window (exp(-745) is below the smallest double): the count at its time is then +inf when
    anything is stored (every later event weighs more than any float, relative to it) and NaN
    (no comparison holds) when nothing is, where Python's ``/`` would raise ZeroDivisionError."""
    if weight:
        return stored / weight
    return math.inf if stored > 0 else (-math.inf if stored < 0 else math.nan)


def apply_number(values: list[float], view: View, is_night: bool, short_call_s: float,  # noqa: PLR0917
                 a2p_senders: frozenset[str] = frozenset(), code_senders: frozenset[str] = frozenset()) -> None:
    """Update a number's state with one of its views (pure except for ``values``).

    ``code_senders``: pseudonyms of the one-time-code senders (the registry's code categories);
    SMS from them count in the change tail, with what the number did since its latest change."""
    _start(values, view)
    t_ms = view.occurred_ms
    # from the number's latest event before this one; a late event's own predecessor is not known,
    # so it is judged by the 5-minute count alone (0)
    gap_ms = max(0, t_ms - int(values[LAST_MS]))
    before_s = int(values[LAST_MS]) // 1000
    weights = advance(values, NUMBER, t_ms)
    role = view.role
    t_s = t_ms // 1000
    before_change = max(int(values[SIM_CHANGED_S]), int(values[DEVICE_CHANGED_S]))
    rcpt_pos = -2           # an out view's recipient: -1 never contacted, else its slot in the set before
    link = False
    code = False
    if role == "out":
        if view.type == "sms":
            # the 5-minute count at this SMS's time, before it (stored / weight: forward decay)
            if _at_time(values[_N_SMS_OUT], weights[0]) >= BURST_PRIOR and gap_ms <= RUN_GAP_MS:
                add(values, _N_BURST, weights)
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
            rcpt_pos = change_tail.position(values, _N_RCPT_SET, fingerprint)
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
        else:
            apply_line(values, view, t_s)
    cell_pos = -2           # -2: no cell; -1: a new cell; else its slot in the set before this view
    if view.cell is not None:
        fingerprint = fp32(view.cell)
        cell_pos = change_tail.position(values, _N_CELL_SET, fingerprint)
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
    watermark_s = int(values[LAST_MS]) // 1000
    link_runs_forget(values, before_s, watermark_s)
    if link and rcpt_pos == -1:
        link_run(values, t_s, watermark_s)
    change_tail.update(values, before_change, rcpt_pos, link, code, cell_pos)


def link_run(values: list[float], t_s: int, watermark_s: int) -> None:
    """Count a link SMS to a never-contacted recipient at ``t_s`` in the number's link runs.

    ``watermark_s``: the number's watermark after this view, in seconds (``LAST_MS``; call
    ``link_runs_forget`` first). The latest run's full time is rebuilt from it (``_latest_run_s``);
    the SMS's own time is never read modulo 2**24. More than ``RUN_GAP_S`` whole seconds after the
    latest such SMS (``t_s`` and that time are whole seconds: a gap under 30 s always continues a
    run, one of 31 s or more always starts one, and one in between does either, by where the
    seconds fall) it starts another run: the count, decayed over a day (``LINK_RUN_TAU_S``) since
    the latest one, gains one, rounded to its fixed point (1/16); within the gap it continues the
    run. A late SMS, before the latest such SMS, counts nothing and moves nothing: its neighbours
    are not known, so out of order a run is missed when every one of its SMS arrives after a later
    run's, and split when one arrives more than the gap after the latest seen while the SMS between
    are still to come. With no count held, the SMS starts one at its own time unless that is more
    than ``LINK_RUN_FORGET_S`` before the watermark (it would be cleared at once): then nothing."""
    packed = int(values[_T_RUNS])
    units = packed >> 24
    if not units:
        if watermark_s - t_s <= LINK_RUN_FORGET_S:
            values[_T_RUNS] = LINK_RUN_ONE << 24 | (t_s & LINK_RUN_TIME_MASK)
        return
    gap = t_s - _latest_run_s(packed, watermark_s)
    if gap > RUN_GAP_S:
        units = min(255, int(units * _EXP(-gap / LINK_RUN_TAU_S) + LINK_RUN_ONE + 0.5))
    elif gap < 0:
        return
    values[_T_RUNS] = units << 24 | (t_s & LINK_RUN_TIME_MASK)


def _latest_run_s(packed: int, watermark_s: int) -> int:
    """The full time of the latest run's SMS: the one at or before ``watermark_s`` whose time
    modulo 2**24 s is the stored one. Exact while it is less than 2**24 s (194 days) before the
    watermark, which ``link_runs_forget`` keeps (it clears a count a week old)."""
    return watermark_s - ((watermark_s - packed) & LINK_RUN_TIME_MASK)


def link_runs_forget(values: list[float], before_s: int, watermark_s: int) -> None:
    """Clear a link-run count whose latest run is more than ``LINK_RUN_FORGET_S`` before the
    number's watermark ``watermark_s`` (after this view; nothing is left of the count), on the
    watermark alone: a view older than the watermark (an incoming SMS dated months back, a
    backfilled record) clears nothing the watermark does not. ``before_s``: the watermark before
    this view, which the stored time is rebuilt from (the field is at most a week old there), so a
    jump of the watermark by more than 2**24 s is measured exactly too."""
    packed = int(values[_T_RUNS])
    if packed and watermark_s - _latest_run_s(packed, before_s) > LINK_RUN_FORGET_S:
        values[_T_RUNS] = 0


def apply_line(values: list[float], view: View, t_s: int) -> None:
    """A number's call-forwarding or subscription lifecycle change (``layout``: EVICTED's bits 2-7).

    Forwarding sets or clears its kind's bit. A new subscription is an activation (the tenure
    starts; after a cease the number was recycled); a port-in is a SIM change and starts the
    tenure at this operator; a cease or port-out ends the line and its forwardings.
    """
    bits = int(values[EVICTED])
    forwarding, subscription = view.forwarding, view.subscription
    if forwarding is not None:
        bit = FORWARDING_BITS.get(forwarding.kind, 0)
        if forwarding.action == "set":
            bits |= bit
        elif forwarding.action == "cleared":
            bits &= ~bit
    elif subscription is not None:
        line = bits & LINE_MASK
        change = subscription.change
        if change == "new":
            values[ACTIVATED_S] = max(int(values[ACTIVATED_S]), t_s)
            line = LINE_RECYCLED if line == LINE_CEASED else (line or LINE_ACTIVE)
        elif change == "ported_in":
            values[SIM_CHANGED_S] = max(int(values[SIM_CHANGED_S]), t_s)
            values[ACTIVATED_S] = max(int(values[ACTIVATED_S]), t_s)
            line = LINE_ACTIVE
        elif change in ("ceased", "ported_out"):
            line = LINE_CEASED
            bits &= ~FORWARDING_MASK
        bits = (bits & ~LINE_MASK) | line
    values[EVICTED] = bits



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
    if view.imsi is not None:
        imsi = fp32(view.imsi)
        if values[_D_IMSI_SET[0]] != imsi and known(values, _D_IMSI_SET, imsi):
            add(values, _D_IMSI_BACK, weights)     # a SIM of the device came back after another
        if remember(values, _D_IMSI_SET, imsi):
            add(values, _D_NEW_IMSI, weights)
    if view.number is not None and remember(values, _D_NUMBER_SET, fp32(view.number)):
        add(values, _D_NEW_NUMBER, weights)
    if view.cell is not None and remember(values, _D_CELL_SET, fp32(view.cell)):
        add(values, _D_NEW_CELL, weights)
    _set_tac(values, view.tac)


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
    before_sim, before_device, before_activated = values[SIM_CHANGED_S], values[DEVICE_CHANGED_S], values[ACTIVATED_S]
    before_line = int(values[EVICTED]) & LINE_STATE_MASK
    if is_number:
        apply_number(values, view, night, short_call_s, a2p_allow, code_senders)
    else:
        apply_device(values, view, a2p_allow)
    if offset is not None:
        values[OFFSET] = offset
    now_ms = int(values[LAST_MS])
    # an activation is a change too: it is the latest SIM change and the first device association
    changed = (values[SIM_CHANGED_S] != before_sim or values[DEVICE_CHANGED_S] != before_device
               or values[ACTIVATED_S] != before_activated)
    # a forwarding or lifecycle change of the line is one as well (and never takes the quiet path)
    line_changed = int(values[EVICTED]) & LINE_STATE_MASK != before_line
    changed = changed or line_changed
    activity = out_activity(values, layout)
    modem = int(values[TAC]) in modem_tacs
    if (activity < min_activity and not modem and not values[RISK_LEVEL] and not values[FLAG_EXPIRES_S]
            and now_ms // 1000 - max(values[SIM_CHANGED_S], values[DEVICE_CHANGED_S], values[ACTIVATED_S]) > 86_400
            and not protected and not line_changed):
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
