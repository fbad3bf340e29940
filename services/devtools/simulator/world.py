"""The simulated world: identifier tables, subscriber lines and columnar event batches.

Identifiers (numbers, IMEIs, IMSIs, cells) live once in string tables; lines and events refer
to them by index, so generation stays in NumPy arrays. A *line* is one SIM subscription of a
reporting operator: its number, IMSI, default device (IMEI), operator and cells. An event names
the line of the reporting side (``direction: mo`` → the originator, ``mt`` → the recipient),
whose device and IMSI the event carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from services.devtools.simulator import catalog

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
B = npt.NDArray[np.bool_]

SMS: Final = 0
CALL: Final = 1
SIM: Final = 2
# SIM rows' changes; the ``forwarding:`` / ``subscription:`` ones are written as contract v1's
# forwarding and subscription events (appended: the codes of the others stay)
_LINE_CHANGES: Final = tuple(f"subscription:{c}" for c in ("new", "ported_in", "ported_out", "ceased")) + tuple(
    f"forwarding:{a}:{k}" for a in ("set", "cleared") for k in ("unconditional", "busy", "no_answer", "not_reachable"))
CHANGES: Final[tuple[str, ...]] = ("swap", "activation", "port_in", "port_out", "device_change", *_LINE_CHANGES)
CHANGE_CODE: Final[dict[str, int]] = {name: i for i, name in enumerate(CHANGES)}
OPERATOR_CODE: Final[dict[str, int]] = {name: i for i, name in enumerate(catalog.OPERATORS)}


class World:
    """String tables plus the line table; grows as the population and scenarios add to it."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.numbers: list[str] = []
        self.imeis: list[str] = []     # 14-digit bodies (TAC + serial)
        self.imsis: list[str] = []
        self.cells: list[str] = []
        self._used_numbers: set[str] = set()
        self._used_devices: set[str] = set()
        self._used_imsis: set[str] = set()
        # line table
        self.line_number = np.zeros(0, np.int32)
        self.line_operator = np.zeros(0, np.int8)
        self.line_imsi = np.zeros(0, np.int32)
        self.line_imei = np.zeros(0, np.int32)
        self.line_home_cell = np.zeros(0, np.int32)
        self.line_work_cell = np.zeros(0, np.int32)
        self.line_roaming = np.zeros(0, np.bool_)    # abroad: events carry visited-network cells
        # cells per operator (Dutch networks) and abroad
        self.operator_cells: dict[int, I32] = {}
        self.visited_cells = np.zeros(0, np.int32)

    # --- string tables ------------------------------------------------------------------------
    def add_numbers(self, values: list[str]) -> I32:
        start = len(self.numbers)
        self.numbers.extend(values)
        self._used_numbers.update(values)
        return np.arange(start, start + len(values), dtype=np.int32)

    def add_number(self, value: str) -> int:
        if value in self._used_numbers:
            return self.numbers.index(value)
        return int(self.add_numbers([value])[0])

    def new_numbers(self, prefix: str, digits: int, count: int) -> I32:
        """``count`` fresh numbers ``prefix`` + ``digits`` random digits, none used before."""
        values: list[str] = []
        low, high = 10 ** (digits - 1), 10 ** digits
        while len(values) < count:
            for draw in self.rng.integers(low, high, size=(count - len(values)) * 2 + 8).tolist():
                text = f"{prefix}{draw}"
                if text not in self._used_numbers:
                    self._used_numbers.add(text)
                    values.append(text)
                    if len(values) == count:
                        break
        start = len(self.numbers)
        self.numbers.extend(values)
        return np.arange(start, start + count, dtype=np.int32)

    def new_mobile_numbers(self, count: int) -> I32:
        """Dutch mobile numbers +316 + 8 digits."""
        return self.new_numbers("+316", 8, count)

    def new_devices(self, count: int, tacs: tuple[str, ...]) -> I32:
        values: list[str] = []
        tac_choice = self.rng.integers(0, len(tacs), size=count * 2 + 8).tolist()
        serials = self.rng.integers(0, 1_000_000, size=count * 2 + 8).tolist()
        for tac_i, serial in zip(tac_choice, serials, strict=True):
            body = f"{tacs[tac_i]}{serial:06d}"
            if body not in self._used_devices:
                self._used_devices.add(body)
                values.append(body)
                if len(values) == count:
                    break
        while len(values) < count:  # astronomically unlikely; keep it correct anyway
            body = f"{tacs[0]}{int(self.rng.integers(0, 1_000_000)):06d}"
            if body not in self._used_devices:
                self._used_devices.add(body)
                values.append(body)
        start = len(self.imeis)
        self.imeis.extend(values)
        return np.arange(start, start + count, dtype=np.int32)

    def new_imsis(self, mccmncs: list[str]) -> I32:
        """One fresh IMSI (MCC+MNC + 10 digits) per given home network."""
        values: list[str] = []
        draws = self.rng.integers(0, 10**10, size=len(mccmncs)).tolist()
        for mccmnc, draw in zip(mccmncs, draws, strict=True):
            text = f"{mccmnc}{draw:010d}"
            while text in self._used_imsis:
                text = f"{mccmnc}{int(self.rng.integers(0, 10**10)):010d}"
            self._used_imsis.add(text)
            values.append(text)
        start = len(self.imsis)
        self.imsis.extend(values)
        return np.arange(start, start + len(values), dtype=np.int32)

    def add_cells(self, values: list[str]) -> I32:
        start = len(self.cells)
        self.cells.extend(values)
        return np.arange(start, start + len(values), dtype=np.int32)

    def build_cells(self, per_operator: int) -> None:
        """Cell ids per Dutch network (``MCCMNC-LAC-CI``) and a pool abroad."""
        for op_name, mccmncs, *_ in catalog.DUTCH_OPERATORS:
            lacs = self.rng.integers(1000, 65000, size=per_operator)
            cis = self.rng.integers(1, 268_435_455, size=per_operator)
            names = [f"{mccmncs[0]}-{lac}-{ci}" for lac, ci in zip(lacs.tolist(), cis.tolist(), strict=True)]
            self.operator_cells[OPERATOR_CODE[op_name]] = self.add_cells(names)
        abroad = []
        for network in catalog.VISITED_NETWORKS:
            for lac, ci in zip(self.rng.integers(1000, 65000, 20).tolist(),
                               self.rng.integers(1, 268_435_455, 20).tolist(), strict=True):
                abroad.append(f"{network}-{lac}-{ci}")
        self.visited_cells = self.add_cells(abroad)

    def random_cells(self, operator: I8 | npt.NDArray[np.int64], rng: np.random.Generator) -> I32:
        """One random cell of each given operator's network (the partner's visitors use Dutch cells)."""
        out = np.zeros(len(operator), np.int32)
        dutch = list(self.operator_cells)
        for code in np.unique(operator).tolist():
            mask = operator == code
            pool = self.operator_cells[code if code in self.operator_cells else dutch[0]]
            out[mask] = pool[rng.integers(0, len(pool), int(mask.sum()))]
        return out

    # --- lines --------------------------------------------------------------------------------
    @property
    def n_lines(self) -> int:
        return len(self.line_number)

    def add_lines(self, numbers: I32, operator: I8, imsi: I32, imei: I32, home_cell: I32, *,
                  work_cell: I32 | None = None, roaming: B | None = None) -> I32:
        start = self.n_lines
        n = len(numbers)
        self.line_number = np.concatenate([self.line_number, numbers.astype(np.int32)])
        self.line_operator = np.concatenate([self.line_operator, operator.astype(np.int8)])
        self.line_imsi = np.concatenate([self.line_imsi, imsi.astype(np.int32)])
        self.line_imei = np.concatenate([self.line_imei, imei.astype(np.int32)])
        self.line_home_cell = np.concatenate([self.line_home_cell, home_cell.astype(np.int32)])
        work = home_cell if work_cell is None else work_cell
        self.line_work_cell = np.concatenate([self.line_work_cell, work.astype(np.int32)])
        roam = np.zeros(n, np.bool_) if roaming is None else roaming
        self.line_roaming = np.concatenate([self.line_roaming, roam])
        return np.arange(start, start + n, dtype=np.int32)

    def new_fraud_lines(self, count: int, operator_name: str, devices: I32, cell: int) -> I32:
        """Prepaid SIMs of one Dutch operator placed round-robin in ``devices`` at one cell."""
        code = OPERATOR_CODE[operator_name]
        mccmncs = next(op[1] for op in catalog.DUTCH_OPERATORS if op[0] == operator_name)
        numbers = self.new_mobile_numbers(count)
        imsi = self.new_imsis([mccmncs[i % len(mccmncs)] for i in range(count)])
        imei = devices[np.arange(count) % len(devices)]
        cells = np.full(count, cell, np.int32)
        return self.add_lines(numbers, np.full(count, code, np.int8), imsi, imei, cells, work_cell=cells)

    def imei15(self, device: int) -> str:
        body = self.imeis[device]
        return body + catalog.luhn_check_digit(body)


@dataclass
class Change:
    """From ``t_ms`` on, ``line`` uses another device and/or IMSI (upgrade, swap, takeover) and/or
    is served by another cell (a trip, the fraudster's whereabouts)."""

    line: int
    t_ms: int
    imei: int = -1
    imsi: int = -1
    cell: int = -1


@dataclass
class Truth:
    scenario: str
    entity_type: str          # "number" | "device"
    identifier: str           # plaintext E.164 or 15-digit IMEI
    start_ms: int
    end_ms: int
    instance: str = ""        # the scenario instance it belongs to, e.g. "sms_farm#2" (one campaign)


@dataclass
class Batch:
    """Columnar events. -1 means "none" for indices and "derive from the line" for overrides."""

    t: I64
    kind: I8
    a: I32
    b: I32
    mo: B
    line: I32
    segments: I8
    url: B
    chars: npt.NDArray[np.int16]
    duration: I32
    answered: B
    change: I8
    imei: I32              # override of the line's device
    imsi: I32              # override of the line's IMSI
    cell: I32              # override of the line's cell
    sim_imei: I32          # sim events: the new device named in ``sim``
    sim_imsi: I32          # sim events: the new IMSI named in ``sim``

    @property
    def size(self) -> int:
        return len(self.t)


_COLUMNS: Final[tuple[tuple[str, type, int], ...]] = (
    ("t", np.int64, 0), ("kind", np.int8, 0), ("a", np.int32, -1), ("b", np.int32, -1),
    ("mo", np.bool_, 1), ("line", np.int32, -1), ("segments", np.int8, 1), ("url", np.bool_, 0),
    ("chars", np.int16, 0), ("duration", np.int32, 0), ("answered", np.bool_, 0), ("change", np.int8, -1),
    ("imei", np.int32, -1), ("imsi", np.int32, -1), ("cell", np.int32, -1), ("sim_imei", np.int32, -1),
    ("sim_imsi", np.int32, -1),
)


def batch(n: int, **columns: object) -> Batch:
    """A batch of ``n`` events; columns not given take their defaults; scalars broadcast."""
    values: dict[str, np.ndarray] = {}  # type: ignore[type-arg]
    for name, dtype, default in _COLUMNS:
        given = columns.pop(name, None)
        if given is None:
            values[name] = np.full(n, default, dtype=dtype)
        else:
            arr: np.ndarray = np.asarray(given).astype(dtype, copy=False)  # type: ignore[type-arg]
            values[name] = np.broadcast_to(arr, (n,)).copy() if arr.ndim == 0 else np.asarray(arr)
            if len(values[name]) != n:
                raise ValueError(f"column {name}: {len(values[name])} values for {n} events")
    if columns:
        raise TypeError(f"unknown columns {sorted(columns)}")
    return Batch(**values)  # type: ignore[arg-type]


def concat(batches: list[Batch]) -> Batch:
    if not batches:
        return batch(0)
    return Batch(**{name: np.concatenate([getattr(b, name) for b in batches]) for name, _, _ in _COLUMNS})


def take(events: Batch, index: npt.NDArray[np.int64] | B) -> Batch:
    return Batch(**{name: getattr(events, name)[index] for name, _, _ in _COLUMNS})


@dataclass(frozen=True)
class Negative:
    """A normal entity of a hard-negative class (a legitimate look-alike of fraud), for the truth file."""

    cls: str                  # e.g. "call_centre", "iot_fleet", "lost_phone" (docs/simulator.md)
    entity_type: str          # "number" | "device"
    index: int                # into ``World.numbers`` or ``World.imeis``


@dataclass
class Scene:
    """What one generator contributes: events, identity changes and truth lines."""

    batches: list[Batch] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    truth: list[Truth] = field(default_factory=list)
    # (line, t_ms): drop the line's own (reporting-side) events at/after t (victim loses service)
    silence_after: list[tuple[int, int]] = field(default_factory=list)
    # (line, t_ms): drop every event of the line before t (activated during the run)
    silence_before: list[tuple[int, int]] = field(default_factory=list)
    negatives: list[Negative] = field(default_factory=list)

    def label(self, cls: str, entity_type: str, indices: npt.NDArray[np.int32] | list[int] | int) -> None:
        """Mark numbers (or devices) as members of a hard-negative class."""
        values = [indices] if isinstance(indices, int) else np.asarray(indices).tolist()
        self.negatives += [Negative(cls, entity_type, int(i)) for i in values]

    def extend(self, other: Scene) -> None:
        self.batches += other.batches
        self.changes += other.changes
        self.truth += other.truth
        self.silence_after += other.silence_after
        self.silence_before += other.silence_before
        self.negatives += other.negatives
