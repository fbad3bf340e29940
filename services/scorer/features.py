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
from dataclasses import dataclass
from typing import Any

from services.common.records import View

WINDOWS: tuple[tuple[str, int], ...] = (("5m", 300_000), ("1h", 3_600_000), ("24h", 86_400_000))
N_WIN = len(WINDOWS)
_TAUS = tuple(float(tau) for _, tau in WINDOWS)

# -- header shared by both entity types (indices into the unpacked list) --------------------------
LAST_MS = 0           # q  latest event time applied (the entity's watermark)
OFFSET = 1            # q  last source offset applied (-1: none); replays at or below it are skipped
FIRST_S = 2           # I  first event time seen (seconds)
SIM_CHANGED_S = 3     # I  last SIM swap / port-in (seconds, 0 = unknown)
DEVICE_CHANGED_S = 4  # I  last device change (seconds, 0 = unknown)
ACTIVATED_S = 5       # I  SIM activation (seconds, 0 = unknown)
FLAG_FIRST_S = 6      # I  first_flagged_at of the current flag (0 = not flagged)
FLAG_EXPIRES_S = 7    # I  expires_at of the current flag
EPISODE_S = 8         # I  start of the current alert episode (0 = none)
LAST_HIGH_S = 9       # I  latest time the entity was at >= the alert level
SCORED_S = 10         # I  latest time the models scored this entity
N_VIEWS = 11          # I  views applied
DEVICE_FP = 12        # Q  64-bit fingerprint of the current device (numbers) / of itself (devices)
RISK_SCORE = 13       # B  score of the latest Risk emitted
RISK_LEVEL = 14       # B  level rank of the latest Risk emitted
EVICTED = 15          # B  bit 0: the recipient set has overflowed (distinct count is sketched);
#                           bit 1 (numbers): seen as a reporting operator's subscriber (ON_NET)
TAC = 16              # I  TAC of the device (devices) / of the current device (numbers), 0 unknown
MODEL_POINTS = 17     # f  points of the latest model scoring (kept between scorings)
SCORED_ACTIVITY = 18  # f  activity at the latest model scoring (re-score when it grows)
RISK_AT_S = 19        # I  time of the latest Risk emitted (its score decays from there)
BASE_MS = 20          # q  base time of the forward-decayed counters (0 = none yet)
# the flagged-devices table keeps no counters, so its BASE_MS slot holds the remembered device's
# campaign id instead (signed 64 bits, 0 = none): named for that meaning where the table is used
CAMPAIGN_BITS = BASE_MS
ON_NET = 2            # EVICTED bit 1: the number is some reporting operator's subscriber; numbers
#                       only ever seen from the other side (abroad, off-net) keep it clear
_HEADER = "qqIIIIIIIIIIQBBBIffIq"
HEADER_LEN = len(_HEADER)
DEVICE_FP_OFFSET = struct.calcsize("<" + _HEADER[:DEVICE_FP])   # byte offset of DEVICE_FP in a record

RCPT_CAP = 16         # exact recent-recipient set
CELL_CAP = 4
IDS_CAP = 8           # IMSIs / numbers seen on a device
SKETCH_WORDS = 4      # 256-bit linear-counting bitmap

# -- link tail (after the sketch; appended in policy 2026.11.6, so older records migrate by
# padding zeros). Offsets from ``Layout.link_at``:
LINK_S = 0            # I  numbers: event time of the latest link (its act on a flagged device)
LINK_EXPIRES_S = 1    # I  numbers: the link flag's expiry (0 = no link flag)
LINK_SCORE = 2        # B  numbers: points of the link flag
LINK_FP = 3           # I  numbers: fingerprint of the (device, episode) of the latest link alert;
#                          devices: fingerprint of the latest number a link was sent for
_LINK_TAIL = "IIBI"
LINK_TAIL = struct.Struct("<" + _LINK_TAIL)


class Layout:
    """Where each part of an entity type's record sits in the unpacked list."""

    def __init__(self, counters: tuple[str, ...], sets: tuple[tuple[str, int], ...]) -> None:
        self.counters = counters
        self.sets = sets
        fmt = "<" + _HEADER + "f" * (len(counters) * N_WIN)
        for _, cap in sets:
            fmt += "I" * cap
        fmt += "Q" * SKETCH_WORDS
        self.legacy_size = struct.calcsize(fmt)     # records written before the link tail
        fmt += _LINK_TAIL
        self.struct = struct.Struct(fmt)
        index = HEADER_LEN
        self.counter_at: dict[str, int] = {}
        for name in counters:
            self.counter_at[name] = index
            index += N_WIN
        self.counters_end = index
        self.set_at: dict[str, tuple[int, int]] = {}
        for name, cap in sets:
            self.set_at[name] = (index, index + cap)
            index += cap
        self.sketch_at = index
        self.link_at = index + SKETCH_WORDS
        self.n_fields = self.link_at + len(_LINK_TAIL)
        self.size = self.struct.size
        self.link_offset = self.legacy_size          # byte offset of the link tail in a record

    def empty(self) -> list[float]:
        # typed like an unpacked record (0.0 in float fields), so a new entity's first view
        # computes exactly what the compiled update does
        values: list[float] = [0.0 if c == "f" else 0 for c in self.struct.format[1:]]
        values[OFFSET] = -1
        return values

    def pack(self, values: list[float]) -> bytes:
        return self.struct.pack(*values)

    def unpack(self, data: bytes) -> list[float]:
        return list(self.struct.unpack(data))

    def link_tail(self, data: bytes) -> tuple[int, int, int, int]:
        """(LINK_S, LINK_EXPIRES_S, LINK_SCORE, LINK_FP) of a packed record, without unpacking it."""
        return LINK_TAIL.unpack_from(data, self.link_offset)  # type: ignore[return-value]

    def migrate(self, data: bytes) -> bytes | None:
        """A record of this or the previous layout (no link tail) in this layout; None otherwise."""
        if len(data) == self.size:
            return data
        if len(data) == self.legacy_size:
            return data + bytes(LINK_TAIL.size)
        return None


NUMBER = Layout(
    counters=("sms_out", "sms_in", "call_out", "call_in", "url_out", "new_rcpt", "night_out",
              "short_call", "unanswered", "new_cell", "a2p_in"),
    sets=(("rcpt", RCPT_CAP), ("cell", CELL_CAP)),
)
# a flagged device as the numbers' partition remembers it (from a broadcast link): LAST_MS = the
# link's time, DEVICE_FP = the device's fingerprint, EPISODE_S = its alert episode, RISK_SCORE =
# its score; BASE_MS = its campaign id's 64 bits (signed, 0 = none: the device's own then);
# LINK_EXPIRES_S = when the memory ends. Only header and link tail are used.
FLAGGED = Layout(counters=(), sets=())
DEVICE = Layout(
    counters=("out", "new_imsi", "new_number", "new_cell", "new_rcpt", "change", "url_out", "call_out", "a2p_in"),
    sets=(("rcpt", RCPT_CAP), ("imsi", IDS_CAP), ("number", IDS_CAP), ("cell", CELL_CAP)),
)


def fp32(pseudonym: str) -> int:
    """32-bit fingerprint of a pseudonym (never 0, which marks an empty slot)."""
    return int(pseudonym[:8], 16) or 1


def fp64(pseudonym: str) -> int:
    return int(pseudonym[:16], 16) or 1


def _remember(values: list[float], bounds: tuple[int, int], fingerprint: int) -> bool:
    """Move ``fingerprint`` to the front of the MRU set; True when it was not in the set."""
    start, end = bounds
    recent = values[start:end]
    if fingerprint in recent:
        pos = recent.index(fingerprint)
        if pos:
            del recent[pos]
            recent.insert(0, fingerprint)
            values[start:end] = recent
        return False
    overflow = recent[-1] != 0
    recent.insert(0, fingerprint)
    values[start:end] = recent[:-1]
    if overflow and bounds[1] - bounds[0] == RCPT_CAP:
        values[EVICTED] = int(values[EVICTED]) | 1
    return True


def set_size(values: list[float], bounds: tuple[int, int]) -> int:
    start, end = bounds
    return sum(1 for v in values[start:end] if v)


def _sketch_add(values: list[float], at: int, fingerprint: int) -> None:
    bit = (fingerprint >> 8) & 255
    word = at + (bit >> 6)
    values[word] = int(values[word]) | (1 << (bit & 63))


def sketch_estimate(values: list[float], at: int) -> float:
    """Linear counting over the 256-bit bitmap (saturates near 1 400 distinct)."""
    ones = sum(int(values[at + i]).bit_count() for i in range(SKETCH_WORDS))
    zeros = 256 - ones
    if zeros == 0:
        zeros = 1
    return -256.0 * math.log(zeros / 256.0)


_REBASE_MS = 40 * 300_000     # exp(40) ~ 2e17: far from overflow, still exact enough


def _advance(values: list[float], layout: Layout, t_ms: int) -> tuple[float, float, float]:
    """Move the watermark to ``t_ms`` if newer; the per-window weights of an event at ``t_ms``.

    Forward decay: the weight is ``exp((t - B)/τ)`` for base time ``B``; late events simply get
    a smaller weight. When the base falls far behind, every counter is rescaled to a new base.
    """
    base = int(values[BASE_MS])
    if not base:
        values[BASE_MS] = base = t_ms
    elif t_ms - base > _REBASE_MS:
        f5, f1, f24 = _decay_factors(t_ms - base)
        start, end = HEADER_LEN, layout.counters_end
        values[start:end:3] = [v * f5 for v in values[start:end:3]]
        values[start + 1:end:3] = [v * f1 for v in values[start + 1:end:3]]
        values[start + 2:end:3] = [v * f24 for v in values[start + 2:end:3]]
        values[BASE_MS] = base = t_ms
    values[LAST_MS] = max(values[LAST_MS], t_ms)
    gap = t_ms - base
    return _EXP(gap / _TAU_5M), _EXP(gap / _TAU_1H), _EXP(gap / _TAU_24H)


_EXP = math.exp
_TAU_5M, _TAU_1H, _TAU_24H = _TAUS


def _decay_factors(gap_ms: int) -> tuple[float, float, float]:
    return _EXP(-gap_ms / _TAU_5M), _EXP(-gap_ms / _TAU_1H), _EXP(-gap_ms / _TAU_24H)


def current(values: list[float], layout: Layout) -> list[float]:
    """A copy of ``values`` with the counters as plain decayed counts at the watermark."""
    out = list(values)
    gap = int(values[LAST_MS]) - int(values[BASE_MS])
    if gap and values[BASE_MS]:
        f5, f1, f24 = _decay_factors(gap)
        start, end = HEADER_LEN, layout.counters_end
        out[start:end:3] = [v * f5 for v in out[start:end:3]]
        out[start + 1:end:3] = [v * f1 for v in out[start + 1:end:3]]
        out[start + 2:end:3] = [v * f24 for v in out[start + 2:end:3]]
    return out


def _add(values: list[float], at: int, weights: tuple[float, float, float]) -> None:
    values[at] += weights[0]
    values[at + 1] += weights[1]
    values[at + 2] += weights[2]


def _start(values: list[float], view: View) -> list[float]:
    t_s = view.occurred_ms // 1000
    if not values[FIRST_S] or t_s < values[FIRST_S]:
        values[FIRST_S] = t_s
    values[N_VIEWS] += 1
    return values


@dataclass(frozen=True)
class Context:
    """What the update needs besides the view: the night-time test and the short-call bound."""

    is_night_ms: object  # Callable[[int], bool], kept loose for a frozen dataclass
    short_call_s: float = 10.0


_NUM = NUMBER.counter_at
_N_SMS_OUT, _N_SMS_IN, _N_CALL_OUT, _N_CALL_IN = _NUM["sms_out"], _NUM["sms_in"], _NUM["call_out"], _NUM["call_in"]
_N_URL, _N_NEW_RCPT, _N_NIGHT = _NUM["url_out"], _NUM["new_rcpt"], _NUM["night_out"]
_N_SHORT, _N_UNANS, _N_NEW_CELL, _N_A2P = _NUM["short_call"], _NUM["unanswered"], _NUM["new_cell"], _NUM["a2p_in"]
_N_RCPT_SET, _N_CELL_SET = NUMBER.set_at["rcpt"], NUMBER.set_at["cell"]


_TAC_MAX = 2**32 - 1   # a TAC is 8 digits; a longer digit string is not one (and would not pack)


def _set_tac(values: list[float], tac: str | None) -> None:
    if tac is not None and tac.isdigit():
        number = int(tac)
        if number <= _TAC_MAX:
            values[TAC] = number


def apply_number(values: list[float], view: View, is_night: bool, short_call_s: float,
                 a2p_senders: frozenset[str] = frozenset()) -> None:
    """Update a number's state with one of its views (pure except for ``values``)."""
    _start(values, view)
    t_ms = view.occurred_ms
    weights = _advance(values, NUMBER, t_ms)
    role = view.role
    t_s = t_ms // 1000
    if role == "out":
        if view.type == "sms":
            _add(values, _N_SMS_OUT, weights)
            if view.sms is not None and view.sms.has_url:
                _add(values, _N_URL, weights)
        else:
            _add(values, _N_CALL_OUT, weights)
            call = view.call
            if call is not None:
                if not call.answered:
                    _add(values, _N_UNANS, weights)
                elif call.duration_s < short_call_s:
                    _add(values, _N_SHORT, weights)
        if is_night:
            _add(values, _N_NIGHT, weights)
        if view.peer is not None:
            fingerprint = fp32(view.peer)
            if _remember(values, _N_RCPT_SET, fingerprint):
                _add(values, _N_NEW_RCPT, weights)
            _sketch_add(values, NUMBER.sketch_at, fingerprint)
    elif role == "in":
        if view.type == "sms":
            _add(values, _N_SMS_IN, weights)
            if view.peer_kind in ("alphanumeric", "short_code") or view.peer in a2p_senders:
                _add(values, _N_A2P, weights)
        else:
            _add(values, _N_CALL_IN, weights)
    else:  # change
        sim = view.sim
        if sim is not None:
            if sim.change in ("swap", "port_in"):
                values[SIM_CHANGED_S] = max(int(values[SIM_CHANGED_S]), t_s)
            elif sim.change == "activation":
                values[ACTIVATED_S] = max(int(values[ACTIVATED_S]), t_s)
            elif sim.change == "device_change":
                values[DEVICE_CHANGED_S] = max(int(values[DEVICE_CHANGED_S]), t_s)
    if view.cell is not None and _remember(values, _N_CELL_SET, fp32(view.cell)):
        _add(values, _N_NEW_CELL, weights)
    if view.subscriber:
        values[EVICTED] = int(values[EVICTED]) | ON_NET
    if view.device is not None and t_ms >= values[LAST_MS]:
        device = fp64(view.device)
        known = int(values[DEVICE_FP])
        if known and known != device and role != "change":
            # a different handset under the same number: a device swap seen on traffic
            values[DEVICE_CHANGED_S] = max(int(values[DEVICE_CHANGED_S]), t_s)
        values[DEVICE_FP] = device
    _set_tac(values, view.tac)


_DEV = DEVICE.counter_at
_D_OUT, _D_NEW_IMSI, _D_NEW_NUMBER = _DEV["out"], _DEV["new_imsi"], _DEV["new_number"]
_D_NEW_CELL, _D_NEW_RCPT, _D_CHANGE = _DEV["new_cell"], _DEV["new_rcpt"], _DEV["change"]
_D_URL, _D_CALL, _D_A2P = _DEV["url_out"], _DEV["call_out"], _DEV["a2p_in"]
_D_RCPT_SET, _D_IMSI_SET = DEVICE.set_at["rcpt"], DEVICE.set_at["imsi"]
_D_NUMBER_SET, _D_CELL_SET = DEVICE.set_at["number"], DEVICE.set_at["cell"]


def apply_device(values: list[float], view: View, a2p_senders: frozenset[str] = frozenset()) -> None:
    """Update a device's state with one of its views (``a2p_senders``: pseudonyms of A2P senders)."""
    _start(values, view)
    weights = _advance(values, DEVICE, view.occurred_ms)
    if not values[DEVICE_FP]:
        values[DEVICE_FP] = fp64(view.entity)
    if view.role == "in":
        if view.type == "sms" and view.peer is not None and view.peer in a2p_senders:
            _add(values, _D_A2P, weights)
    elif view.role == "out":
        _add(values, _D_OUT, weights)
        if view.type == "call":
            _add(values, _D_CALL, weights)
        elif view.sms is not None and view.sms.has_url:
            _add(values, _D_URL, weights)
        if view.peer is not None:
            fingerprint = fp32(view.peer)
            if _remember(values, _D_RCPT_SET, fingerprint):
                _add(values, _D_NEW_RCPT, weights)
            _sketch_add(values, DEVICE.sketch_at, fingerprint)
    elif view.role == "change":
        _add(values, _D_CHANGE, weights)
    if view.imsi is not None and _remember(values, _D_IMSI_SET, fp32(view.imsi)):
        _add(values, _D_NEW_IMSI, weights)
    if view.number is not None and _remember(values, _D_NUMBER_SET, fp32(view.number)):
        _add(values, _D_NEW_NUMBER, weights)
    if view.cell is not None and _remember(values, _D_CELL_SET, fp32(view.cell)):
        _add(values, _D_NEW_CELL, weights)
    _set_tac(values, view.tac)


def _share(part: float, whole: float) -> float:
    # two pseudo-events in the denominator: one URL SMS is not a "100 % URL" sender
    return part / (whole + 2.0)


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


def number_features(values: list[float]) -> dict[str, float]:
    """The number's features at its watermark (every feature: larger = more suspicious)."""
    v = current(values, NUMBER)
    sms_out_1h, call_out_1h = v[_N_SMS_OUT + 1], v[_N_CALL_OUT + 1]
    out_1h = sms_out_1h + call_out_1h
    out_24h = v[_N_SMS_OUT + 2] + v[_N_CALL_OUT + 2]
    in_24h = v[_N_SMS_IN + 2] + v[_N_CALL_IN + 2]
    now_s = int(v[LAST_MS]) // 1000
    evicted = int(v[EVICTED]) & 1
    distinct = sketch_estimate(v, NUMBER.sketch_at) if evicted else float(set_size(v, _N_RCPT_SET))
    return {
        "sms_out_5m": v[_N_SMS_OUT], "sms_out_1h": sms_out_1h, "sms_out_24h": v[_N_SMS_OUT + 2],
        "call_out_5m": v[_N_CALL_OUT], "call_out_1h": call_out_1h, "call_out_24h": v[_N_CALL_OUT + 2],
        "new_recipients_5m": v[_N_NEW_RCPT], "new_recipients_1h": v[_N_NEW_RCPT + 1],
        "new_recipients_24h": v[_N_NEW_RCPT + 2],
        "new_recipient_share_1h": _share(v[_N_NEW_RCPT + 1], out_1h),
        "new_recipient_share_24h": _share(v[_N_NEW_RCPT + 2], out_24h),
        "distinct_recipients": distinct,
        "url_share_1h": _share(v[_N_URL + 1], sms_out_1h),
        "url_share_24h": _share(v[_N_URL + 2], v[_N_SMS_OUT + 2]),
        "url_share_lb_24h": _share_lower_bound(v[_N_URL + 2], v[_N_SMS_OUT + 2]),
        "url_sms_1h": v[_N_URL + 1], "url_sms_24h": v[_N_URL + 2],
        "out_in_ratio_24h": (out_24h + 1.0) / (in_24h + 1.0),
        "night_share_24h": _share(v[_N_NIGHT + 2], out_24h),
        "new_cells_24h": v[_N_NEW_CELL + 2],
        "short_call_share_1h": _share(v[_N_SHORT + 1], call_out_1h),
        "unanswered_share_1h": _share(v[_N_UNANS + 1], call_out_1h),
        "unanswered_1h": v[_N_UNANS + 1],
        "a2p_in_5m": v[_N_A2P], "a2p_in_1h": v[_N_A2P + 1], "a2p_in_24h": v[_N_A2P + 2],
        "url_sms_5m": v[_N_URL], "unanswered_5m": v[_N_UNANS], "unanswered_24h": v[_N_UNANS + 2],
        "observed_h": (now_s - v[FIRST_S]) / 3600.0 if v[FIRST_S] else 0.0,
        "sim_change_recency": _recency(now_s, v[SIM_CHANGED_S], 86_400.0),
        "device_change_recency": _recency(now_s, v[DEVICE_CHANGED_S], 86_400.0),
        "sim_newness": _recency(now_s, v[ACTIVATED_S], 7 * 86_400.0),
        "off_net": 0.0 if int(v[EVICTED]) & ON_NET else 1.0,
    }


def device_features(values: list[float]) -> dict[str, float]:
    v = current(values, DEVICE)
    evicted = int(v[EVICTED]) & 1
    now_s = int(v[LAST_MS]) // 1000
    return {
        "out_5m": v[_D_OUT], "out_1h": v[_D_OUT + 1], "out_24h": v[_D_OUT + 2],
        "new_imsis_5m": v[_D_NEW_IMSI], "new_imsis_1h": v[_D_NEW_IMSI + 1], "new_imsis_24h": v[_D_NEW_IMSI + 2],
        "new_numbers_5m": v[_D_NEW_NUMBER], "new_numbers_1h": v[_D_NEW_NUMBER + 1],
        "new_numbers_24h": v[_D_NEW_NUMBER + 2], "new_recipients_5m": v[_D_NEW_RCPT],
        "url_sms_5m": v[_D_URL], "url_sms_1h": v[_D_URL + 1], "calls_out_5m": v[_D_CALL],
        "url_share_1h": _share(v[_D_URL + 1], v[_D_OUT + 1]),
        "url_share_24h": _share(v[_D_URL + 2], v[_D_OUT + 2] - v[_D_CALL + 2]),
        "new_recipient_share_24h": _share(v[_D_NEW_RCPT + 2], v[_D_OUT + 2]),
        "a2p_in_5m": v[_D_A2P], "a2p_in_1h": v[_D_A2P + 1],
        "observed_h": (now_s - v[FIRST_S]) / 3600.0 if v[FIRST_S] else 0.0,
        "distinct_imsis": float(set_size(v, _D_IMSI_SET)),
        "distinct_numbers": float(set_size(v, _D_NUMBER_SET)),
        "new_cells_24h": v[_D_NEW_CELL + 2],
        "new_recipients_1h": v[_D_NEW_RCPT + 1], "new_recipients_24h": v[_D_NEW_RCPT + 2],
        "distinct_recipients": sketch_estimate(v, DEVICE.sketch_at) if evicted else float(set_size(v, _D_RCPT_SET)),
        "changes_24h": v[_D_CHANGE + 2],
        "url_sms_24h": v[_D_URL + 2], "calls_out_1h": v[_D_CALL + 1], "calls_out_24h": v[_D_CALL + 2],
        "a2p_in_24h": v[_D_A2P + 2],
    }


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
               modem_tacs: frozenset[int], protected: bool) -> ApplyResult:
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
        apply_number(values, view, night, short_call_s, a2p_allow)
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
FLAG_EXPIRES_OFFSET = struct.calcsize("<" + _HEADER[:FLAG_EXPIRES_S])   # byte offset in a record
_LINK_EXPIRES_IN_TAIL = struct.calcsize("<" + _LINK_TAIL[:LINK_EXPIRES_S])


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
    if _fastcore.LAYOUT_SIGNATURE != LAYOUT_SIGNATURE:
        return None
    return getattr(_fastcore, name, None)


COMPILED_APPLY: Callable[..., ApplyResult | None] | None = _compiled("apply")     # apply_view, compiled
COMPILED_SCAN: Callable[..., tuple[list[bytes], list[bytes]] | None] | None = _compiled("scan")  # scan_records
