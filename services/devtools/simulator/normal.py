"""Normal life on a Dutch mobile network, including the hard negatives.

- A population of subscribers over three Dutch operators (plus visitors reported by a foreign
  roaming partner, dual-SIM phones and subscribers roaming abroad).
- A contact graph: most SMS and calls go to a small recurring circle (neighbourhood-local,
  rank-skewed), replies and call-backs make it two-way.
- Daily rhythms, calls to businesses and to bank service numbers (which only ever *receive*
  calls: the do-not-originate list), international contacts.
- A2P traffic from alphanumeric senders and short codes (one-time codes, parcel notices with
  links): legitimately high volume to never-contacted recipients.
- Innocent phone upgrades, SIM swaps, activations and port-outs.
- Hard negatives: call centres (many outgoing calls, but answered, long, to recurring customers,
  with call-backs), businesses sending bulk SMS from a mobile number, busy group chats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.devtools.simulator import catalog
from services.devtools.simulator.params import WorldParams, fixed_world, per_100k
from services.devtools.simulator.timeline import BUSINESS, EVENING, SOCIAL, Timeline, rhythm_days
from services.devtools.simulator.world import (
    CALL,
    CHANGE_CODE,
    OPERATOR_CODE,
    SIM,
    SMS,
    Batch,
    Change,
    Scene,
    World,
    batch,
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


def _sms_columns(rng: np.random.Generator, n: int, url_share: float) -> dict[str, object]:
    segments = np.where(rng.random(n) < 0.85, 1, np.where(rng.random(n) < 0.8, 2, 3)).astype(np.int8)
    chars = np.minimum(segments.astype(np.int64) * 153, rng.integers(8, 160, n) + (segments.astype(np.int64) - 1) * 153)
    return {"segments": segments, "chars": chars, "url": rng.random(n) < url_share}


def _call_columns(rng: np.random.Generator, n: int, answered_share: float, median_s: float,
                  sigma: float = 1.0) -> dict[str, object]:
    answered = rng.random(n) < answered_share
    duration = np.clip(rng.lognormal(np.log(median_s), sigma, n), 3, 7200).astype(np.int32)
    return {"answered": answered, "duration": np.where(answered, duration, 0)}


def p2p_traffic(world: World, tl: Timeline, pop: Population, rng: np.random.Generator) -> Scene:
    """Person-to-person SMS and calls in the contact graph, replies and call-backs."""
    scene = Scene()
    social = rhythm_days(tl, SOCIAL, weekend_factor=0.9)
    line_of = number_line(world)
    for kind, rate in ((SMS, pop.sms_per_day), (CALL, pop.calls_per_day)):
        counts = rng.poisson(rate * social)
        pos = np.repeat(np.arange(len(pop.lines)), counts)
        n = len(pos)
        start = pop.contact_start[pos]
        k = pop.contact_start[pos + 1] - start
        rank = np.minimum((k * rng.random(n) ** 2.2).astype(np.int64), k - 1)
        b = pop.contacts[start + rank]
        stranger = rng.random(n) < pop.params.stranger_share
        b = np.where(stranger, world.line_number[pop.lines[rng.integers(0, len(pop.lines), n)]], b)
        src = pop.lines[pos]
        b = np.where(b == world.line_number[src], world.line_number[pop.lines[(pos + 1) % len(pop.lines)]], b)
        t = tl.sample(rng, n, SOCIAL, weekend_factor=0.9)
        cols = _sms_columns(rng, n, 0.02) if kind == SMS else _call_columns(rng, n, 0.78, 75.0)
        first = batch(n, t=t, kind=kind, a=world.line_number[src], b=b, mo=True, line=src, **cols)
        scene.batches.append(first)
        # replies (SMS) and call-backs (missed calls) from recipients that are lines in the world
        b_line = line_of[b]
        p_back = pop.params.sms_reply_share if kind == SMS else 0.4
        back = (b_line >= 0) & (rng.random(n) < p_back)
        if kind == CALL:
            back &= ~first.answered
        idx = np.flatnonzero(back)
        m = len(idx)
        delay = (rng.exponential(180_000 if kind == SMS else 600_000, m) + 5_000).astype(np.int64)
        cols = _sms_columns(rng, m, 0.01) if kind == SMS else _call_columns(rng, m, 0.85, 90.0)
        scene.batches.append(batch(m, t=t[idx] + delay, kind=kind, a=b[idx], b=world.line_number[src[idx]],
                                   mo=True, line=b_line[idx], **cols))
    return scene


def inbound_and_services(world: World, tl: Timeline, pop: Population, rng: np.random.Generator) -> Scene:
    """Calls from businesses and abroad into subscribers (mt), calls to businesses and banks (mo)."""
    scene = Scene()
    dutch = pop.dutch
    business = rhythm_days(tl, BUSINESS, weekend_factor=0.2)
    social = rhythm_days(tl, SOCIAL)
    # businesses and foreign contacts calling in
    counts = rng.poisson(0.5 * business, len(dutch))
    recv = np.repeat(dutch, counts)
    n = len(recv)
    from_land = rng.random(n) < 0.7
    a = np.where(from_land, pop.landlines[rng.integers(0, len(pop.landlines), n)],
                 pop.foreign[rng.integers(0, len(pop.foreign), n)])
    is_call = from_land | (rng.random(n) < 0.5)
    t = tl.sample(rng, n, BUSINESS, weekend_factor=0.2)
    answered = is_call & (rng.random(n) < 0.7)
    duration = np.where(answered, np.clip(rng.lognormal(np.log(120.0), 1.0, n), 3, 7200), 0).astype(np.int32)
    segments = np.where(is_call, 1, np.where(rng.random(n) < 0.85, 1, 2))
    chars = np.where(is_call, 0, rng.integers(8, 300, n) // segments)
    scene.batches.append(batch(n, t=t, kind=np.where(is_call, CALL, SMS), a=a, b=world.line_number[recv], mo=False,
                               line=recv, answered=answered, duration=duration, segments=segments, chars=chars))
    # subscribers calling businesses and their bank's published service number (inbound-only)
    counts = rng.poisson(0.6 * business, len(dutch))
    src = np.repeat(dutch, counts)
    n = len(src)
    to_bank = rng.random(n) < 0.08
    b = np.where(to_bank, pop.banks[rng.integers(0, len(pop.banks), n)],
                 pop.landlines[rng.integers(0, len(pop.landlines), n)])
    scene.batches.append(batch(n, t=tl.sample(rng, n, BUSINESS, weekend_factor=0.2), kind=CALL,
                               a=world.line_number[src], b=b, mo=True, line=src,
                               **_call_columns(rng, n, 0.9, 240.0, 0.8)))
    # roaming abroad: a few calls home per day on top of normal life (cells come from the line)
    roamers = dutch[world.line_roaming[dutch]]
    counts = rng.poisson(2.0 * social, len(roamers))
    src = np.repeat(roamers, counts)
    n = len(src)
    b = world.line_number[dutch[rng.integers(0, len(dutch), n)]]
    scene.batches.append(batch(n, t=tl.sample(rng, n, SOCIAL), kind=CALL, a=world.line_number[src], b=b, mo=True,
                               line=src, **_call_columns(rng, n, 0.8, 150.0)))
    return scene


def a2p_traffic(world: World, tl: Timeline, pop: Population, rng: np.random.Generator) -> Scene:
    """Bank one-time codes, parcel notices, operator messages: high volume, never-contacted recipients."""
    senders = pop.params.a2p_senders
    sender_numbers = np.asarray([world.add_number(s.name) for s in senders], np.int32)
    weights = np.asarray([s.weight for s in senders])
    url_share = np.asarray([s.url_share for s in senders])
    otp = np.asarray([s.otp for s in senders])
    recipients = pop.lines[: len(pop.dutch)]
    counts = rng.poisson(pop.params.a2p_per_day * rhythm_days(tl, SOCIAL), len(recipients))
    recv = np.repeat(recipients, counts)
    n = len(recv)
    which = rng.choice(len(senders), size=n, p=weights / weights.sum())
    t = tl.sample(rng, n, SOCIAL)
    # one-time codes often come twice (the user asks again)
    again = np.flatnonzero(otp[which] & (rng.random(n) < 0.25))
    recv = np.concatenate([recv, recv[again]])
    which = np.concatenate([which, which[again]])
    t = np.concatenate([t, t[again] + rng.integers(20_000, 120_000, len(again))])
    n = len(recv)
    url = rng.random(n) < url_share[which]
    chars = np.where(url, rng.integers(90, 160, n), rng.integers(30, 120, n))
    scene = Scene()
    scene.batches.append(batch(n, t=t, kind=SMS, a=sender_numbers[which], b=world.line_number[recv], mo=False,
                               line=recv, url=url, chars=chars, segments=1))
    scene.label("a2p_sender", "number", sender_numbers)
    # everyone who gets one-time codes in the run (logins, payments): the codes half of a takeover
    scene.label("otp_receiver", "number", np.unique(world.line_number[recv[otp[which]]]))
    return scene


def _pick_customers(rng: np.random.Generator, pool: I32, size: int) -> I32:
    return rng.choice(pool, size=min(size, len(pool)), replace=False).astype(np.int32)


def call_centres(world: World, tl: Timeline, pop: Population, rng: np.random.Generator, n_subs: int) -> Scene:
    """Outbound call centres: many calls, one office cell, but answered, long, recurring, called back."""
    scene = Scene()
    business = rhythm_days(tl, BUSINESS, weekend_factor=0.2)
    p = pop.params
    count = per_100k(rng, p.call_centres_per_100k, n_subs) if p.random else 2 + n_subs // 30_000
    for _ in range(count):
        agents_n = int(rng.integers(*p.call_centre_agents))
        op = catalog.DUTCH_OPERATORS[int(rng.integers(0, 3))]
        code = OPERATOR_CODE[op[0]]
        office = int(world.random_cells(np.asarray([code], np.int8), rng)[0])
        numbers = world.new_mobile_numbers(agents_n)
        cells = np.full(agents_n, office, np.int32)
        agents = world.add_lines(numbers, np.full(agents_n, code, np.int8), world.new_imsis([op[1][0]] * agents_n),
                                 world.new_devices(agents_n, catalog.PHONE_TACS), cells, work_cell=cells)
        customers = _pick_customers(rng, pop.dutch, int(rng.integers(400, 1500)))
        zipf = 1.0 / np.arange(1, len(customers) + 1) ** 0.6
        zipf /= zipf.sum()
        counts = rng.poisson(p.call_centre_calls_per_agent_day * business, agents_n)
        src = np.repeat(agents, counts)
        n = len(src)
        cust = customers[rng.choice(len(customers), size=n, p=zipf)]
        t = tl.sample(rng, n, BUSINESS, weekend_factor=0.2)
        scene.batches.append(batch(n, t=t, kind=CALL, a=world.line_number[src], b=world.line_number[cust], mo=True,
                                   line=src, **_call_columns(rng, n, p.call_centre_answered,
                                                             p.call_centre_median_s, 0.8)))
        scene.label("call_centre", "number", numbers)
        scene.label("call_centre", "device", world.line_imei[agents])
        back = np.flatnonzero(rng.random(n) < 0.2)
        m = len(back)
        cust_b = cust[back]
        scene.batches.append(batch(m, t=t[back] + rng.integers(60_000, 7_200_000, m), kind=CALL,
                                   a=world.line_number[cust_b], b=world.line_number[src[back]], mo=True,
                                   line=cust_b, **_call_columns(rng, m, 0.9, 240.0)))
    return scene


def bulk_senders(world: World, tl: Timeline, pop: Population, rng: np.random.Generator, n_subs: int) -> Scene:
    """Businesses (dentists, clubs, municipalities) texting their customer lists from a mobile number."""
    scene = Scene()
    business = rhythm_days(tl, BUSINESS, weekend_factor=0.1)
    p = pop.params
    for _ in range(per_100k(rng, p.bulk_phones_per_100k, n_subs) if p.random else 2 + n_subs // 30_000):
        op = catalog.DUTCH_OPERATORS[int(rng.integers(0, 3))]
        code = OPERATOR_CODE[op[0]]
        cell = world.random_cells(np.asarray([code], np.int8), rng)
        sender = world.add_lines(world.new_mobile_numbers(1), np.asarray([code], np.int8),
                                 world.new_imsis([op[1][0]]), world.new_devices(1, catalog.PHONE_TACS), cell,
                                 work_cell=cell)
        customers = _pick_customers(rng, pop.dutch, int(rng.integers(300, 1500)))
        n = int(rng.poisson(float(rng.integers(150, 400)) * business))
        cust = customers[rng.integers(0, len(customers), n)]
        t = tl.sample(rng, n, BUSINESS, weekend_factor=0.1)
        scene.batches.append(batch(n, t=t, kind=SMS, a=world.line_number[sender[0]], b=world.line_number[cust],
                                   mo=True, line=int(sender[0]), **_sms_columns(rng, n, 0.15)))
        back = np.flatnonzero(rng.random(n) < 0.1)
        m = len(back)
        scene.batches.append(batch(m, t=t[back] + rng.integers(30_000, 3_600_000, m), kind=SMS,
                                   a=world.line_number[cust[back]], b=world.line_number[sender[0]], mo=True,
                                   line=cust[back], segments=1, chars=rng.integers(2, 40, m)))
        scene.label("bulk_sms_phone", "number", int(world.line_number[sender[0]]))
    return scene


def group_chats(world: World, tl: Timeline, pop: Population, rng: np.random.Generator, n_subs: int) -> Scene:
    """Busy SMS group chats: each message fans out to every other member (recurring recipients)."""
    members_all: list[I32] = []
    senders: list[I32] = []
    recipients: list[I32] = []
    times: list[I64] = []
    evening = rhythm_days(tl, EVENING)
    p = pop.params
    for _ in range(per_100k(rng, p.group_chats_per_100k, n_subs) if p.random else max(2, n_subs // 2500)):
        members = _pick_customers(rng, pop.dutch, int(rng.integers(8, 26)))
        members_all.append(members)
        n_msgs = int(rng.poisson(float(rng.integers(40, 200)) * evening))
        weights = 1.0 / np.arange(1, len(members) + 1)
        who = rng.choice(len(members), size=n_msgs, p=weights / weights.sum())
        t = tl.sample(rng, n_msgs, EVENING)
        k = len(members)
        # message i from member who[i] goes to the other k-1 members
        rep_sender = np.repeat(who, k - 1)
        offs = np.tile(np.arange(1, k), n_msgs)
        rep_recv = (rep_sender + offs) % k
        senders.append(members[rep_sender])
        recipients.append(members[rep_recv])
        times.append(np.repeat(t, k - 1) + rng.integers(0, 1500, len(rep_sender)))
    scene = Scene()
    if senders:
        src = np.concatenate(senders)
        n = len(src)
        scene.batches.append(batch(n, t=np.concatenate(times), kind=SMS, a=world.line_number[src],
                                   b=world.line_number[np.concatenate(recipients)], mo=True, line=src,
                                   **_sms_columns(rng, n, 0.03)))
        scene.label("group_chat", "number", np.unique(world.line_number[np.concatenate(members_all)]))
    return scene


def identity_changes(world: World, tl: Timeline, pop: Population, rng: np.random.Generator) -> Scene:
    """Innocent phone upgrades, SIM swaps (lost phone, eSIM), activations/port-ins and port-outs."""
    scene = Scene()
    n_subs = len(pop.dutch)
    days = max(tl.days, 1 / 24)
    chosen = rng.choice(pop.dutch, size=min(n_subs, 4 + int(n_subs * 0.012 * days)), replace=False)
    p = pop.params
    n_up = max(1, int(rng.poisson(n_subs * p.device_change_rate * days)))
    n_swap = max(1, int(rng.poisson(n_subs * p.owner_swap_rate * days)))
    n_act = max(1, int(rng.poisson(n_subs * p.activation_rate * days)))
    n_out = max(1, int(rng.poisson(n_subs * p.port_out_rate * days)))
    plan = (["device_change"] * n_up + ["swap"] * n_swap + ["activation"] * n_act + ["port_out"] * n_out)
    plan = plan[: len(chosen)]
    chosen = chosen[: len(plan)]
    t_all = tl.sample(rng, len(plan), BUSINESS, weekend_factor=0.5, lo_ms=tl.start_ms + 60_000)
    rows: dict[str, list[int]] = {"t": [], "line": [], "change": [], "sim_imei": [], "sim_imsi": [], "a": [],
                                  "imei": [], "imsi": []}
    for planned, line, t in zip(plan, chosen.tolist(), t_all.tolist(), strict=True):
        change = planned
        number = int(world.line_number[line])
        imei, imsi = int(world.line_imei[line]), int(world.line_imsi[line])
        sim_imei = sim_imsi = -1
        if change == "device_change":
            imei = sim_imei = int(world.new_devices(1, catalog.PHONE_TACS)[0])
            scene.changes.append(Change(line, t, imei=imei))
            scene.label("device_changer", "number", number)
            scene.label("device_changer", "device", imei)
        elif change == "swap":
            mccmnc = world.imsis[imsi][:5]
            imsi = sim_imsi = int(world.new_imsis([mccmnc])[0])
            if rng.random() < p.lost_phone_share:  # lost, stolen or broken: a new SIM in a new phone
                # (the swap record names the SIM only, as in a takeover; the phone shows in later traffic)
                imei = int(world.new_devices(1, catalog.PHONE_TACS)[0])
                away = p.random and rng.random() < p.lost_away_share
                if away:   # lost on a trip: the new SIM and phone are bought away from home (new cells)
                    cell = int(world.random_cells(np.asarray([world.line_operator[line]], np.int8), rng)[0])
                    scene.changes.append(Change(line, t, imei=imei, imsi=imsi, cell=cell))
                else:
                    scene.changes.append(Change(line, t, imei=imei, imsi=imsi))
                cls = "lost_phone_away" if away else "lost_phone"
                scene.label(cls, "number", number)
                scene.label(cls, "device", imei)
            else:
                scene.changes.append(Change(line, t, imsi=imsi))
                scene.label("owner_sim_swap", "number", number)
        elif change == "activation":
            sim_imsi, sim_imei = imsi, imei
            scene.silence_before.append((line, t))
            if rng.random() < 0.5:
                change = "port_in"
            scene.label("new_activation", "number", number)
        else:
            scene.silence_after.append((line, t + 1))
        for key, value in (("t", t), ("line", line), ("change", CHANGE_CODE[change]), ("sim_imei", sim_imei),
                           ("sim_imsi", sim_imsi), ("a", number), ("imei", imei), ("imsi", imsi)):
            rows[key].append(value)
    n = len(rows["t"])
    scene.batches.append(batch(n, kind=SIM, mo=True, **{k: np.asarray(v) for k, v in rows.items()}))
    scene.extend(_reenrolment_codes(world, tl, rows, rng, p.otp_senders()))
    scene.batches.append(_line_changes(world, tl, pop, rng, rows))
    return scene


def _line_changes(world: World, tl: Timeline, pop: Population, rng: np.random.Generator,
                  rows: dict[str, list[int]]) -> Batch:
    """Contract v1's line events of ordinary life: each activation, port-in and port-out also as a
    subscription event, and subscribers setting or clearing call forwarding (mostly to voicemail
    on busy / no answer; now and then everything, e.g. to a landline while abroad)."""
    t: list[int] = []
    line: list[int] = []
    change: list[int] = []
    sim_code = {CHANGE_CODE["activation"]: "new", CHANGE_CODE["port_in"]: "ported_in",
                CHANGE_CODE["port_out"]: "ported_out"}
    for t_row, line_row, code in zip(rows["t"], rows["line"], rows["change"], strict=True):
        if code in sim_code:
            t.append(t_row)
            line.append(line_row)
            change.append(CHANGE_CODE[f"subscription:{sim_code[code]}"])
    n_subs = len(pop.dutch)
    n_fwd = min(n_subs, 1 + int(rng.poisson(n_subs * 0.004 * max(tl.days, 1 / 24))))
    kinds = rng.choice(["no_answer", "busy", "not_reachable", "unconditional"], size=n_fwd, p=[0.5, 0.25, 0.15, 0.1])
    actions = np.where(rng.random(n_fwd) < 0.8, "set", "cleared")
    for who, kind, action, when in zip(rng.choice(pop.dutch, size=n_fwd).tolist(), kinds.tolist(), actions.tolist(),
                                       tl.sample(rng, n_fwd, BUSINESS, lo_ms=tl.start_ms + 60_000).tolist(),
                                       strict=True):
        t.append(when)
        line.append(who)
        change.append(CHANGE_CODE[f"forwarding:{action}:{kind}"])
    lines = np.asarray(line, dtype=np.int32)
    return batch(len(t), kind=SIM, mo=True, t=np.asarray(t, dtype=np.int64), line=lines,
                 a=world.line_number[lines] if t else lines, change=np.asarray(change, dtype=np.int32))


def otp_sender_numbers(world: World, senders: tuple[str, ...] = catalog.A2P_OTP_SENDERS) -> I32:
    """Number indices of the one-time-code senders (banks, DigiD, their short codes)."""
    return np.asarray([world.add_number(s) for s in senders], np.int32)


LOST_PHONE_SHARE = 0.4        # the fixed world's share of owner swaps with a new phone (a takeover's hard negative)
REENROL_SHARE = 0.6           # ... after which the owner re-activates banking apps and DigiD: one-time codes


def _reenrolment_codes(world: World, tl: Timeline, rows: dict[str, list[int]],
                       rng: np.random.Generator, otp_senders: tuple[str, ...]) -> Scene:
    """One-time codes that reach an innocent new SIM or phone in the first hours (apps re-activated).

    The same signal a SIM-swap fraudster produces minutes after the swap: a detector must not
    alert on "swap, new phone, bank codes" alone.
    """
    senders = otp_sender_numbers(world, otp_senders)
    change = np.asarray(rows["change"])
    new_sim_or_phone = np.isin(change, [CHANGE_CODE["swap"], CHANGE_CODE["device_change"]])
    chosen = np.flatnonzero(new_sim_or_phone & (rng.random(len(change)) < REENROL_SHARE))
    counts = rng.integers(1, 4, len(chosen))
    idx = np.repeat(chosen, counts)
    n = len(idx)
    t = np.asarray(rows["t"], np.int64)[idx] + rng.integers(2 * 60_000, 120 * 60_000, n)
    keep = t < tl.end_ms
    idx, t, n = idx[keep], t[keep], int(keep.sum())
    line = np.asarray(rows["line"], np.int32)[idx]
    scene = Scene()
    scene.batches.append(batch(n, t=t, kind=SMS, a=senders[rng.integers(0, len(senders), n)],
                               b=world.line_number[line], mo=False, line=line, url=np.zeros(n, np.bool_),
                               chars=rng.integers(40, 90, n), segments=1))
    return scene


def family_phone_blocks(world: World, tl: Timeline, pop: Population, rng: np.random.Generator) -> Scene:
    """Each extra SIM of a shared phone is in it for 1-3 blocks of 1-4 hours a day, else in its own phone."""
    scene = Scene()
    days = max(1, int(np.ceil(tl.days)))
    for line, shared in zip(pop.family.tolist(), pop.family_device.tolist(), strict=True):
        starts = np.sort(tl.sample(rng, int(rng.integers(1, 4)) * days, EVENING))
        own = int(world.line_imei[line])
        last_end = 0
        for start in starts.tolist():
            if start < last_end:
                continue
            end = start + int(rng.integers(1, 5)) * 3_600_000
            scene.changes.append(Change(line, start, imei=shared))
            scene.changes.append(Change(line, end, imei=own))
            last_end = end
    return scene


def normal_life(world: World, tl: Timeline, pop: Population, rng: np.random.Generator, n_subs: int) -> Scene:
    scene = Scene()
    for part in (p2p_traffic(world, tl, pop, rng), inbound_and_services(world, tl, pop, rng),
                 a2p_traffic(world, tl, pop, rng), call_centres(world, tl, pop, rng, n_subs),
                 bulk_senders(world, tl, pop, rng, n_subs), group_chats(world, tl, pop, rng, n_subs),
                 identity_changes(world, tl, pop, rng)):
        scene.extend(part)
    scene.negatives += pop.negatives.negatives
    if len(pop.family):
        scene.extend(family_phone_blocks(world, tl, pop, rng))
    return scene


__all__ = ["Batch", "Population", "build_population", "normal_life", "number_line", "otp_sender_numbers"]
