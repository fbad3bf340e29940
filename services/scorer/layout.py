"""The packed record of an entity: header fields, counters, sets, sketch and link tail.

Every table of the scorer's state (``state.tables``) holds records of one of these layouts;
``features`` updates them, the engine, verdicts, links and the sweep read and write their
fields by the indices here. The counters are the catalogue's (``catalogue.COUNTERS``), each a
decayed count at every window (``catalogue.WINDOWS``), in that order.
"""

from __future__ import annotations

import struct

from services.scorer.catalogue import COUNTERS, WINDOWS

N_WIN = len(WINDOWS)
TAUS = tuple(float(tau) for _, tau in WINDOWS)

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
#                           bit 1 (numbers): seen as a reporting operator's subscriber (ON_NET);
#                           bits 2-5 (numbers): call forwarding set, one bit per kind (FORWARDING_BITS);
#                           bits 6-7 (numbers): the line's lifecycle (LINE_*)
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
# a number's line, from forwarding and subscription events (in EVICTED's spare bits: no new field)
FORWARDING_BITS = {"unconditional": 4, "busy": 8, "no_answer": 16, "not_reachable": 32}
FORWARDING_MASK = 60
LINE_MASK = 192
LINE_ACTIVE = 64      # a new subscription or a port-in (the tenure starts at ACTIVATED_S)
LINE_CEASED = 128     # ceased or ported out
LINE_RECYCLED = 192   # a new subscription after a cease: the number was reassigned at ACTIVATED_S
LINE_STATE_MASK = FORWARDING_MASK | LINE_MASK
HEADER_FORMAT = "qqIIIIIIIIIIQBBBIffIq"
HEADER_LEN = len(HEADER_FORMAT)
DEVICE_FP_OFFSET = struct.calcsize("<" + HEADER_FORMAT[:DEVICE_FP])   # byte offset of DEVICE_FP in a record

RCPT_CAP = 16         # exact recent-recipient set
CELL_CAP = 4
IDS_CAP = 8           # IMSIs / numbers seen on a device
SKETCH_WORDS = 4      # 256-bit linear-counting bitmap

# -- link tail (after the sketch; records of the layout before it migrate by padding zeros).
# Offsets from ``Layout.link_at``:
LINK_S = 0            # I  numbers: event time of the latest link (its act on a flagged device)
LINK_EXPIRES_S = 1    # I  numbers: the link flag's expiry (0 = no link flag)
LINK_SCORE = 2        # B  numbers: points of the link flag
LINK_FP = 3           # I  numbers: fingerprint of the (device, episode) of the latest link alert;
#                          devices: fingerprint of the latest number a link was sent for
LINK_TAIL_FORMAT = "IIBI"
LINK_TAIL = struct.Struct("<" + LINK_TAIL_FORMAT)

# -- numbers' change tail (after the link tail): what the number did since its latest SIM/device
# change (features.apply_number; the account-takeover features of the catalogue). Saturating
# byte counts; records of the layout before it migrate by padding zeros. Offsets from
# ``Layout.tail_at``:
CHG_NEW_OUT = 0       # B  calls/SMS to never-contacted recipients since the change
CHG_KNOWN_OUT = 1     # B  calls/SMS to recipients in the recent-recipient set since the change
CHG_CODES = 2         # B  SMS received from one-time-code senders (registry category) since the change
CHG_LINKS = 3         # B  SMS with a link to never-contacted recipients since the change
CHG_CELLS = 4         # B  bits 0-3: which cell-set slots hold cells seen before the change;
#                          CHG_SAW_NEW / CHG_SAW_OLD / CHG_HAD_CELLS / CHG_HAD_RCPTS below
CHG_RCPT_LO = 5       # B  which recipient-set slots (bits 0-7 ...
CHG_RCPT_HI = 6       # B  ... and 8-15) hold recipients contacted before the change
CHG_SAW_NEW = 16      # a view since the change on a cell never seen before
CHG_SAW_OLD = 32      # a view since the change on a cell seen before the change
CHG_HAD_CELLS = 64    # the number had cells before the change (else "new area" is unknown)
CHG_HAD_RCPTS = 128   # the number had recipients before the change (else "contacts quiet" is unknown)
# after the seven change bytes, kept whatever the changes (not reset by one):
LINK_RUNS = 7         # I  runs of link SMS to never-contacted recipients (features.link_run):
#                          bits 0-23 the latest such SMS's time in seconds modulo 2**24 (LINK_RUN_TIME_MASK;
#                          its full time is the latest at or before the watermark with these bits),
#                          bits 24-31 the runs up to it, decayed with LINK_RUN_TAU_S, in 1/LINK_RUN_ONE
LINK_RUN_TIME_MASK = 0xFFFFFF
LINK_RUN_ONE = 16            # one run in the count's fixed point (at most 255/16 = 15.9 runs)
LINK_RUN_TAU_S = 86_400      # the count decays over a day, as the 24 h windows do
LINK_RUN_FORGET_S = 7 * 86_400   # a week behind the watermark the count is gone (e**-7): the field is cleared
LINK_RUNS_FORMAT = "I"
CHANGE_TAIL_FORMAT = "BBBBBBB" + LINK_RUNS_FORMAT


class Layout:
    """Where each part of an entity type's record sits in the unpacked list."""

    def __init__(self, counters: tuple[str, ...], sets: tuple[tuple[str, int], ...], tail: str = "",
                 appended_counters: int = 0) -> None:
        self.counters = counters
        # the layout before the last ``appended_counters`` counters were added (its records migrate)
        self.older = Layout(counters[:-appended_counters], sets, tail) if appended_counters else None
        self.sets = sets
        fmt = "<" + HEADER_FORMAT + "f" * (len(counters) * N_WIN)
        for _, cap in sets:
            fmt += "I" * cap
        fmt += "Q" * SKETCH_WORDS
        self.legacy_size = struct.calcsize(fmt)     # records written before the link tail
        fmt += LINK_TAIL_FORMAT
        self.pre_tail_size = struct.calcsize(fmt)     # records written before the change tail
        fmt += tail
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
        self.tail_at = self.link_at + len(LINK_TAIL_FORMAT)
        self.n_fields = self.tail_at + len(tail)
        self.size = self.struct.size
        # records written before the link-runs field (the change tail's last field): padded with zeros
        self.pre_runs_size = self.size - struct.calcsize("<" + LINK_RUNS_FORMAT) \
            if tail.endswith(LINK_RUNS_FORMAT) else self.size
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
        """A record of this or an earlier layout (no link tail, no change tail or no link-runs field,
        fewer counters) in
        this layout; None otherwise. What is missing is zeros (nothing known)."""
        if len(data) == self.size:
            return data
        if len(data) in (self.pre_runs_size, self.pre_tail_size, self.legacy_size):
            return data + bytes(self.size - len(data))
        older = self.older
        if older is not None:
            record = older.migrate(data)
            if record is not None:
                values = older.unpack(record)
                added = [0.0] * ((len(self.counters) - len(older.counters)) * N_WIN)
                return self.pack(values[:older.counters_end] + added + values[older.counters_end:])
        return None


# numbers: burst_sms was appended to the counters; records written before it migrate with it at 0
NUMBER = Layout(counters=COUNTERS["number"], sets=(("rcpt", RCPT_CAP), ("cell", CELL_CAP)), tail=CHANGE_TAIL_FORMAT,
                appended_counters=1)
# a flagged device as the numbers' partition remembers it (from a broadcast link): LAST_MS = the
# link's time, DEVICE_FP = the device's fingerprint, EPISODE_S = its alert episode, RISK_SCORE =
# its score; CAMPAIGN_BITS = its campaign id's 64 bits (signed, 0 = none: the device's own then);
# LINK_EXPIRES_S = when the memory ends. Only header and link tail are used.
FLAGGED = Layout(counters=(), sets=())
DEVICE = Layout(
    counters=COUNTERS["device"],
    sets=(("rcpt", RCPT_CAP), ("imsi", IDS_CAP), ("number", IDS_CAP), ("cell", CELL_CAP)),
)
