"""Hard negatives of randomised worlds: legitimate traffic that looks like fraud on one axis.

Each generator adds one class of normal entities and labels them (``Scene.label``) so that the
backtest can report, per class, how many were flagged (``metrics.json`` ``hard_negatives``):

- ``business_modem``: appointment reminders from a GSM modem (1-4 SIMs in one modem-TAC device,
  one cell), to a customer base that returns (rank-skewed), with replies ("JA", "cancel").
- ``iot_fleet``: M2M SIMs (Dutch 097 range) in modules, each reporting to its platform's number
  all day at a steady rate; some fleets move (vehicle trackers), most stand still.
- ``group_organiser``: a person texting the same announcement to many members (a club, a choir,
  a school class), with a share of replies.
- ``a2p_marketing``: marketing bursts from an A2P sender id: a share of all subscribers in
  minutes, mostly with a link, to recipients who never heard from it before.
- ``traveller``: subscribers on a day trip, on cells they never used from some hour on.

Call centres with short calls, shared family phones, tourists, device changers and lost
phones are drawn in ``normal`` (their parameters come from the world, ``params``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.devtools.simulator import catalog
from services.devtools.simulator.params import A2PSender, per_100k
from services.devtools.simulator.population import Population
from services.devtools.simulator.timeline import BUSINESS, EVENING, FLAT, MINUTE_MS, SOCIAL, Timeline, rhythm_days
from services.devtools.simulator.world import OPERATOR_CODE, SMS, Change, Scene, World, batch

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


def _operator(rng: np.random.Generator) -> tuple[int, str]:
    op = catalog.DUTCH_OPERATORS[int(rng.integers(0, len(catalog.DUTCH_OPERATORS)))]
    return OPERATOR_CODE[op[0]], op[1][0]


def business_modems(world: World, tl: Timeline, pop: Population, rng: np.random.Generator, n_subs: int) -> Scene:
    scene = Scene()
    p = pop.params
    business = rhythm_days(tl, BUSINESS, weekend_factor=0.1)
    for _ in range(per_100k(rng, p.modem_businesses_per_100k, n_subs)):
        code, mccmnc = _operator(rng)
        sims = int(rng.integers(1, 5))
        device = world.new_devices(1, catalog.MODEM_TACS)
        cell = world.random_cells(np.asarray([code], np.int8), rng)
        cells = np.repeat(cell, sims)
        lines = world.add_lines(world.new_mobile_numbers(sims), np.full(sims, code, np.int8),
                                world.new_imsis([mccmnc] * sims), np.repeat(device, sims), cells, work_cell=cells)
        customers = rng.choice(pop.dutch, size=min(len(pop.dutch), int(rng.integers(200, 3000))), replace=False)
        returning = 1.0 / np.arange(1, len(customers) + 1) ** 0.5
        n = int(rng.poisson(p.modem_reminders_per_day * float(rng.uniform(0.5, 1.5)) * business))
        cust = customers[rng.choice(len(customers), size=n, p=returning / returning.sum())]
        src = lines[rng.integers(0, sims, n)]
        t = tl.sample(rng, n, BUSINESS, weekend_factor=0.1)
        scene.batches.append(batch(n, t=t, kind=SMS, a=world.line_number[src], b=world.line_number[cust], mo=True,
                                   line=src, segments=1, url=rng.random(n) < 0.2, chars=rng.integers(90, 160, n)))
        back = np.flatnonzero(rng.random(n) < p.modem_reply_share)
        m = len(back)
        scene.batches.append(batch(m, t=t[back] + rng.integers(20_000, 3_600_000, m), kind=SMS,
                                   a=world.line_number[cust[back]], b=world.line_number[src[back]], mo=True,
                                   line=cust[back], segments=1, chars=rng.integers(2, 30, m)))
        scene.label("business_modem", "number", world.line_number[lines])
        scene.label("business_modem", "device", device)
    return scene


def iot_fleets(world: World, tl: Timeline, pop: Population, rng: np.random.Generator, n_subs: int) -> Scene:
    scene = Scene()
    p = pop.params
    days = tl.days
    for _ in range(per_100k(rng, p.iot_fleets_per_100k, n_subs)):
        code, mccmnc = _operator(rng)
        size = int(rng.integers(*p.iot_fleet_size))
        numbers = world.new_numbers("+3197", 9, size)
        devices = world.new_devices(size, catalog.IOT_TACS)
        moving = rng.random() < 0.3
        home = world.random_cells(np.full(size, code, np.int8), rng)
        lines = world.add_lines(numbers, np.full(size, code, np.int8), world.new_imsis([mccmnc] * size), devices,
                                home, work_cell=world.random_cells(np.full(size, code, np.int8), rng) if moving
                                else home)
        platform = world.new_numbers("+3188", 7, int(rng.integers(1, 3)))
        rate = p.iot_reports_per_sim_day * float(rng.uniform(0.7, 1.3))
        counts = rng.poisson(rate * days, size)
        src = np.repeat(lines, counts)
        n = len(src)
        t = tl.sample(rng, n, FLAT)
        scene.batches.append(batch(n, t=t, kind=SMS, a=world.line_number[src],
                                   b=platform[rng.integers(0, len(platform), n)], mo=True, line=src, segments=1,
                                   chars=rng.integers(20, 90, n)))
        # configuration messages from the platform (mt)
        cfg = np.flatnonzero(rng.random(size) < 0.2)
        m = len(cfg)
        scene.batches.append(batch(m, t=tl.sample(rng, m, FLAT), kind=SMS, a=platform[0],
                                   b=world.line_number[lines[cfg]], mo=False, line=lines[cfg], segments=1,
                                   chars=rng.integers(10, 60, m)))
        scene.label("iot_fleet", "number", numbers)
        scene.label("iot_fleet", "device", devices)
    return scene


def group_organisers(world: World, tl: Timeline, pop: Population, rng: np.random.Generator, n_subs: int) -> Scene:
    scene = Scene()
    p = pop.params
    evening = rhythm_days(tl, EVENING)
    for _ in range(per_100k(rng, p.group_organisers_per_100k, n_subs)):
        organiser = int(pop.dutch[int(rng.integers(0, len(pop.dutch)))])
        members = rng.choice(pop.dutch, size=min(len(pop.dutch), int(rng.integers(*p.group_organiser_members))),
                             replace=False)
        members = members[members != organiser]
        k = len(members)
        announcements = max(1, int(rng.poisson(float(rng.uniform(0.5, 3.0)) * max(evening, 0.3))))
        t0 = tl.sample(rng, announcements, EVENING)
        t = np.repeat(t0, k) + np.tile(np.arange(k, dtype=np.int64) * int(rng.integers(2_000, 20_000)),
                                        announcements)
        b = np.tile(world.line_number[members], announcements)
        n = len(t)
        chars = np.repeat(rng.integers(60, 300, announcements), k)
        scene.batches.append(batch(n, t=t, kind=SMS, a=int(world.line_number[organiser]), b=b, mo=True,
                                   line=organiser, segments=np.where(chars <= 160, 1, 2),
                                   url=np.repeat(rng.random(announcements) < 0.2, k), chars=chars))
        back = np.flatnonzero(rng.random(n) < float(rng.uniform(0.05, 0.3)))
        m = len(back)
        member_lines = np.tile(members, announcements)
        scene.batches.append(batch(m, t=t[back] + rng.integers(30_000, 7_200_000, m), kind=SMS,
                                   a=world.line_number[member_lines[back]], b=int(world.line_number[organiser]),
                                   mo=True, line=member_lines[back], segments=1, chars=rng.integers(2, 80, m)))
        scene.label("group_organiser", "number", int(world.line_number[organiser]))
    return scene


def marketing_bursts(world: World, tl: Timeline, pop: Population, rng: np.random.Generator, n_subs: int) -> Scene:
    scene = Scene()
    p = pop.params
    brands: list[A2PSender] = [s for s in p.a2p_senders if s.category in ("marketing", "retail")]
    brands = brands or [s for s in p.a2p_senders if not s.otp] or list(p.a2p_senders)
    for _ in range(per_100k(rng, p.marketing_bursts_per_100k_day, n_subs, max(tl.days, 1 / 24))):
        sender = brands[int(rng.integers(0, len(brands)))]
        number = world.add_number(sender.name)
        n = max(1, int(len(pop.dutch) * p.marketing_burst_share * float(rng.uniform(0.5, 1.5))))
        recv = rng.choice(pop.dutch, size=min(n, len(pop.dutch)), replace=False)
        n = len(recv)
        start = int(tl.sample(rng, 1, SOCIAL)[0])
        t: I64 = start + (rng.random(n) * p.marketing_burst_minutes * MINUTE_MS).astype(np.int64)
        chars = np.full(n, int(rng.integers(100, 300)))
        scene.batches.append(batch(n, t=t, kind=SMS, a=number, b=world.line_number[recv], mo=False, line=recv,
                                   segments=np.where(chars <= 160, 1, 2), url=rng.random() < 0.85, chars=chars))
        scene.label("a2p_marketing", "number", number)
    return scene


def travellers(world: World, tl: Timeline, pop: Population, rng: np.random.Generator, n_subs: int) -> Scene:
    """Subscribers on a day trip: from some hour on every event of theirs is on cells they never
    used (a new cell area), their life otherwise unchanged (the new-area half of a takeover)."""
    scene = Scene()
    p = pop.params
    n = min(len(pop.dutch), int(rng.poisson(p.traveller_share * n_subs)))
    if not n:
        return scene
    lines = rng.choice(pop.dutch, size=n, replace=False)
    lines = lines[~world.line_roaming[lines]]
    t = tl.sample(rng, len(lines), BUSINESS)
    cells = world.random_cells(world.line_operator[lines], rng)
    for line, start, cell in zip(lines.tolist(), t.tolist(), cells.tolist(), strict=True):
        scene.changes.append(Change(line, start, cell=cell))
    scene.label("traveller", "number", world.line_number[lines])
    return scene


def hard_negatives(world: World, tl: Timeline, pop: Population, rngs: list[np.random.Generator],
                   n_subs: int) -> Scene:
    """All classes of this module, each with its own generator (``rngs``: five of them)."""
    scene = Scene()
    builders = (business_modems, iot_fleets, group_organisers, marketing_bursts, travellers)
    for build, rng in zip(builders, rngs, strict=True):
        scene.extend(build(world, tl, pop, rng, n_subs))
    return scene
