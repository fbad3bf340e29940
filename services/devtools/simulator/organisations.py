"""Organisations on mobile numbers, the hard negatives that look like fraud by volume: call centres
(many outgoing calls, but answered, long, to recurring customers, with call-backs), businesses
sending bulk SMS from a mobile number, busy group chats.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.devtools.simulator import catalog
from services.devtools.simulator.params import per_100k
from services.devtools.simulator.population import Population, call_columns, sms_columns
from services.devtools.simulator.timeline import BUSINESS, EVENING, Timeline, rhythm_days
from services.devtools.simulator.world import (
    CALL,
    OPERATOR_CODE,
    SMS,
    Scene,
    World,
    batch,
)

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


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
                                   line=src, **call_columns(rng, n, p.call_centre_answered,
                                                             p.call_centre_median_s, 0.8)))
        scene.label("call_centre", "number", numbers)
        scene.label("call_centre", "device", world.line_imei[agents])
        back = np.flatnonzero(rng.random(n) < 0.2)
        m = len(back)
        cust_b = cust[back]
        scene.batches.append(batch(m, t=t[back] + rng.integers(60_000, 7_200_000, m), kind=CALL,
                                   a=world.line_number[cust_b], b=world.line_number[src[back]], mo=True,
                                   line=cust_b, **call_columns(rng, m, 0.9, 240.0)))
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
                                   mo=True, line=int(sender[0]), **sms_columns(rng, n, 0.15)))
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
                                   **sms_columns(rng, n, 0.03)))
        scene.label("group_chat", "number", np.unique(world.line_number[np.concatenate(members_all)]))
    return scene
