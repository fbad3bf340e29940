"""The normal population of a simulated network: subscribers over three Dutch operators (plus
visitors reported by a foreign roaming partner, dual-SIM phones and subscribers roaming abroad),
their contact graph (a small recurring circle, neighbourhood-local and rank-skewed) and the
hard-negative classes drawn for them; and the SMS and call columns every traffic generator uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.devtools.simulator import catalog
from services.devtools.simulator.params import WorldParams, fixed_world
from services.devtools.simulator.world import (
    OPERATOR_CODE,
    Scene,
    World,
)

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass
class Population:
    """The normal subscribers and who they talk to."""

    lines: I32                  # every socially active line (Dutch, dual-SIM second lines, visitors)
    dutch: I32                  # Dutch operators' primary subscriber lines
    contact_start: I64          # CSR offsets into ``contacts`` per position in ``lines``
    contacts: I32               # number indices (lines' numbers, foreign numbers, landlines)
    sms_per_day: npt.NDArray[np.float64]
    calls_per_day: npt.NDArray[np.float64]
    foreign: I32                # number indices abroad (contacts of the diaspora, visitors' homes)
    landlines: I32              # Dutch businesses and offices
    banks: I32                  # the do-not-originate bank numbers
    params: WorldParams = field(default_factory=fixed_world)
    family: I32 = field(default_factory=lambda: np.zeros(0, np.int32))          # extra SIMs of shared phones
    family_device: I32 = field(default_factory=lambda: np.zeros(0, np.int32))   # ... and the shared phone
    negatives: Scene = field(default_factory=Scene)   # hard-negative labels of the population


def number_line(world: World) -> I32:
    """Map number index → line index (-1 when the number has no line in the world)."""
    out = np.full(len(world.numbers), -1, np.int32)
    out[world.line_number] = np.arange(world.n_lines, dtype=np.int32)
    return out


def _lognormal_mean(rng: np.random.Generator, mean: float, sigma: float, n: int) -> npt.NDArray[np.float64]:
    return rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, n)


# Home networks (MCC+MNC) of visitors by their number's country prefix.
VISITOR_MCCMNC = {"+49": "26201", "+32": "20601", "+44": "23415", "+33": "20801", "+48": "26001", "+90": "28601",
                  "+212": "60400", "+597": "74602"}


def _visitor_mccmnc(prefix: str) -> str:
    return next((v for k, v in VISITOR_MCCMNC.items() if prefix.startswith(k)), catalog.ROAMING_PARTNER_MCCMNC)


def build_population(world: World, n: int, rng: np.random.Generator, params: WorldParams | None = None,
                     ) -> Population:
    params = params or fixed_world()
    labels = Scene()
    shares = np.asarray(params.operator_shares)
    op_index = rng.choice(len(shares), size=n, p=shares / shares.sum())
    op_code = np.asarray([OPERATOR_CODE[op[0]] for op in catalog.DUTCH_OPERATORS], np.int8)[op_index]
    mccmnc = [catalog.DUTCH_OPERATORS[i][1][j % len(catalog.DUTCH_OPERATORS[i][1])]
              for i, j in zip(op_index.tolist(), rng.integers(0, 4, n).tolist(), strict=True)]
    numbers = world.new_mobile_numbers(n)
    imsi = world.new_imsis(mccmnc)
    devices = world.new_devices(n, catalog.PHONE_TACS)
    home = world.random_cells(op_code, rng)
    work = np.where(rng.random(n) < 0.6, world.random_cells(op_code, rng), home)
    roaming = rng.random(n) < params.roaming_share
    dutch = world.add_lines(numbers, op_code, imsi, devices, home, work_cell=work, roaming=roaming)
    labels.label("roamer", "number", world.line_number[dutch[roaming]])

    # Dual-SIM phones: a second (business) line in the same device. Two IMSIs on one IMEI is normal.
    n_dual = max(1, int(n * params.dual_sim_share))
    owners = rng.choice(dutch, size=n_dual, replace=False)
    dual_op = world.line_operator[owners]
    dual_mccmnc = [next(op[1][0] for op in catalog.DUTCH_OPERATORS if OPERATOR_CODE[op[0]] == code)
                   for code in dual_op.tolist()]
    dual = world.add_lines(world.new_mobile_numbers(n_dual), dual_op, world.new_imsis(dual_mccmnc),
                           world.line_imei[owners], world.line_home_cell[owners],
                           work_cell=world.line_work_cell[owners])
    labels.label("dual_sim", "number", world.line_number[dual])
    labels.label("dual_sim", "device", world.line_imei[owners])

    # Visitors (tourists) on Dutch cells: Germans reported by the German roaming partner, the
    # others by the Dutch network they visit (inbound roamers, with their home network's IMSI).
    n_vis = max(3, n // 100) if not params.random else max(3, int(n * params.visitor_share))
    k_pre = len(params.visitor_prefixes)
    per_prefix = [n_vis // k_pre] * (k_pre - 1) + [n_vis - (n_vis // k_pre) * (k_pre - 1)]
    vis_numbers = np.concatenate([world.new_numbers(prefix, digits, count)
                                  for (prefix, digits), count in zip(params.visitor_prefixes, per_prefix, strict=True)])
    vis_prefix = np.repeat(np.arange(k_pre), per_prefix)
    visited = rng.integers(0, 3, n_vis).astype(np.int8)
    vis_cells = world.random_cells(visited, rng)
    german = np.asarray([params.visitor_prefixes[int(i)][0].startswith("+49") for i in vis_prefix], np.bool_)
    vis_op = np.where(german, OPERATOR_CODE[catalog.ROAMING_PARTNER], visited).astype(np.int8)
    vis_mccmnc = [_visitor_mccmnc(params.visitor_prefixes[int(i)][0]) for i in vis_prefix]
    visitors = world.add_lines(vis_numbers, vis_op, world.new_imsis(vis_mccmnc),
                               world.new_devices(n_vis, catalog.PHONE_TACS), vis_cells)
    labels.label("tourist", "number", world.line_number[visitors])
    # Shared family phones (random worlds only): 1-3 more SIMs of the household go into the
    # owner's phone for a few hours at a time (``family_phone_blocks``), else sit in their own phones.
    family = np.zeros(0, np.int32)
    holder = np.zeros(0, np.int32)
    n_fam = int(n * params.family_phone_share)
    if n_fam:
        sims = rng.integers(2, 5, n_fam)
        owners = rng.choice(dutch, size=n_fam, replace=False)
        holder = np.repeat(owners, sims - 1)
        fam_op = world.line_operator[holder]
        fam_mccmnc = [next(op[1][0] for op in catalog.DUTCH_OPERATORS if OPERATOR_CODE[op[0]] == code)
                      for code in fam_op.tolist()]
        family = world.add_lines(world.new_mobile_numbers(len(holder)), fam_op, world.new_imsis(fam_mccmnc),
                                 world.new_devices(len(holder), catalog.PHONE_TACS), world.line_home_cell[holder],
                                 work_cell=world.line_home_cell[holder])
        labels.label("family_phone", "number", np.concatenate([world.line_number[owners], world.line_number[family]]))
        labels.label("family_phone", "device", world.line_imei[owners])

    foreign = np.concatenate([world.new_numbers(prefix, digits, max(2, n // (10 * len(catalog.FOREIGN_PREFIXES))))
                              for prefix, digits in catalog.FOREIGN_PREFIXES])
    landlines = np.concatenate([world.new_numbers(prefix, 7, max(2, n // (50 * len(catalog.LANDLINE_PREFIXES))))
                                for prefix in catalog.LANDLINE_PREFIXES])
    banks = world.add_numbers(list(catalog.BANK_NUMBERS))

    lines = np.concatenate([dutch, dual, visitors, family])
    total = len(lines)
    k = np.clip(np.rint(_lognormal_mean(rng, params.contacts_mean, 0.5, total)), 2, 30).astype(np.int64)
    k[n:n + n_dual] = np.maximum(2, k[n:n + n_dual] // 3)
    contact_start = np.zeros(total + 1, np.int64)
    contact_start[1:] = np.cumsum(k)
    owner_pos = np.repeat(np.arange(total), k)
    m = len(owner_pos)
    kind = rng.random(m)
    offsets = rng.integers(1, 40, m) * rng.choice(np.asarray([-1, 1]), m)
    local_pos = (owner_pos + offsets) % n          # neighbourhood among the Dutch lines
    random_pos = rng.integers(0, total, m)
    pos = np.where(kind < 0.70, local_pos, random_pos)
    contacts = world.line_number[lines[pos]]
    external = kind >= 0.93
    ext_foreign = foreign[rng.integers(0, len(foreign), m)]
    ext_land = landlines[rng.integers(0, len(landlines), m)]
    contacts = np.where(external, np.where(rng.random(m) < 0.6, ext_foreign, ext_land), contacts)
    # visitors mostly call home
    vis_mask = (owner_pos >= n + n_dual) & (owner_pos < n + n_dual + n_vis)
    contacts = np.where(vis_mask & (rng.random(m) < 0.7), ext_foreign, contacts)
    # no self-contacts: replace by a neighbour
    self_mask = contacts == world.line_number[lines[owner_pos]]
    contacts[self_mask] = world.line_number[lines[(owner_pos[self_mask] + 1) % n]]

    sms = _lognormal_mean(rng, params.sms_per_day_mean, 0.8, total)
    calls = _lognormal_mean(rng, params.calls_per_day_mean, 0.7, total)
    sms[n:n + n_dual] *= 0.3
    calls[n:n + n_dual] *= 0.3
    fam_at = n + n_dual + n_vis
    sms[fam_at:] *= 0.6
    calls[fam_at:] *= 0.6
    return Population(lines=lines, dutch=dutch, contact_start=contact_start, contacts=contacts.astype(np.int32),
                      sms_per_day=sms, calls_per_day=calls, foreign=foreign, landlines=landlines, banks=banks,
                      params=params, negatives=labels, family=family,
                      family_device=world.line_imei[holder].astype(np.int32))


def sms_columns(rng: np.random.Generator, n: int, url_share: float) -> dict[str, object]:
    segments = np.where(rng.random(n) < 0.85, 1, np.where(rng.random(n) < 0.8, 2, 3)).astype(np.int8)
    chars = np.minimum(segments.astype(np.int64) * 153, rng.integers(8, 160, n) + (segments.astype(np.int64) - 1) * 153)
    return {"segments": segments, "chars": chars, "url": rng.random(n) < url_share}


def call_columns(rng: np.random.Generator, n: int, answered_share: float, median_s: float,
                  sigma: float = 1.0) -> dict[str, object]:
    answered = rng.random(n) < answered_share
    duration = np.clip(rng.lognormal(np.log(median_s), sigma, n), 3, 7200).astype(np.int32)
    return {"answered": answered, "duration": np.where(answered, duration, 0)}
