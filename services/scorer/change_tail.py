"""A number's change tail: what it did since its latest SIM swap, port-in or device change.

Seven bytes near the end of a number's record (``layout.CHG_*``; the link-run field
``layout.LINK_RUNS`` follows them and is not reset by a change): calls and SMS to never-contacted
and to known recipients, link SMS to never-contacted ones, one-time codes received, and two
bit-masks of which slots of the cell set and the recipient set held something before the change
(they follow those slots as the most-recently-used sets reorder, so a number first contacted after
the change is never taken for one of the owner's usual contacts). ``update`` runs at the end of
``features.apply_number``; the ``since`` features (``derived``) read it for a day after the change.
``_fastcore.c`` keeps the same tail.
"""

from __future__ import annotations

from services.scorer.layout import (
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
    DEVICE_CHANGED_S,
    NUMBER,
    SIM_CHANGED_S,
)

_N_RCPT_SET, _N_CELL_SET = NUMBER.set_at["rcpt"], NUMBER.set_at["cell"]
_T = NUMBER.tail_at
T_NEW_OUT, T_KNOWN_OUT, T_CODES, T_LINKS, T_CELLS = (_T + CHG_NEW_OUT, _T + CHG_KNOWN_OUT, _T + CHG_CODES,
                                                         _T + CHG_LINKS, _T + CHG_CELLS)
T_RCPT_LO, T_RCPT_HI = _T + CHG_RCPT_LO, _T + CHG_RCPT_HI
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


def position(values: list[float], bounds: tuple[int, int], fingerprint: int) -> int:
    """Where ``fingerprint`` sits in the set (-1: not in it)."""
    recent = values[bounds[0]:bounds[1]]
    return recent.index(fingerprint) if fingerprint in recent else -1


def _occupied(values: list[float], bounds: tuple[int, int]) -> int:
    return sum(1 << k for k in range(bounds[1] - bounds[0]) if values[bounds[0] + k])


def update(values: list[float], before_change: int, rcpt_pos: int, link: bool, code: bool,  # noqa: PLR0917
                 cell_pos: int) -> None:
    """The change tail: a new change (not within ``CHANGE_MERGE_S`` of the previous one) starts
    it afresh, everything the cell and recipient sets hold then counting as "before" (the masks
    follow those slots as the sets move); then this view counts as one after it. ``rcpt_pos`` and
    ``cell_pos``: -2 none, -1 new to the set, else the slot it was in before this view. A number
    that never changed keeps the tail at zero."""
    change = max(int(values[SIM_CHANGED_S]), int(values[DEVICE_CHANGED_S]))
    if not change:
        return
    cells = int(values[T_CELLS])
    mask = cells & 15
    rmask = int(values[T_RCPT_LO]) | int(values[T_RCPT_HI]) << 8
    if cell_pos != -2:
        mask = _slots(mask, cell_pos, 15)
    if rcpt_pos != -2:
        rmask = _slots(rmask, rcpt_pos, 0xFFFF)
    if change > before_change and (not before_change or change - before_change > CHANGE_MERGE_S):
        values[T_NEW_OUT] = values[T_KNOWN_OUT] = values[T_CODES] = values[T_LINKS] = 0
        mask = _occupied(values, _N_CELL_SET) & (~1 if cell_pos == -1 else 15)   # this view's new cell: after
        rmask = _occupied(values, _N_RCPT_SET) & (~1 if rcpt_pos == -1 else 0xFFFF)
        cells = (CHG_HAD_CELLS if mask else 0) | (CHG_HAD_RCPTS if rmask else 0)
    if cell_pos == -1:
        cells |= CHG_SAW_NEW
    elif cell_pos >= 0 and mask & 1:
        cells |= CHG_SAW_OLD
    values[T_CELLS] = (cells & ~15) | mask
    values[T_RCPT_LO], values[T_RCPT_HI] = rmask & 255, rmask >> 8
    if rcpt_pos == -1:
        _bump(values, T_NEW_OUT)
        if link:
            _bump(values, T_LINKS)
    elif rcpt_pos >= 0 and rmask & 1:
        _bump(values, T_KNOWN_OUT)
    if code:
        _bump(values, T_CODES)
