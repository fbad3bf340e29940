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

import numpy as np
import numpy.typing as npt

from services.devtools.simulator.identity import identity_changes
from services.devtools.simulator.organisations import bulk_senders, call_centres, group_chats
from services.devtools.simulator.population import (
    Population,
    build_population,
    call_columns,
    number_line,
    sms_columns,
)
from services.devtools.simulator.timeline import BUSINESS, EVENING, SOCIAL, Timeline, rhythm_days
from services.devtools.simulator.world import (
    CALL,
    SMS,
    Batch,
    Change,
    Scene,
    World,
    batch,
)

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


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
        cols = sms_columns(rng, n, 0.02) if kind == SMS else call_columns(rng, n, 0.78, 75.0)
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
        cols = sms_columns(rng, m, 0.01) if kind == SMS else call_columns(rng, m, 0.85, 90.0)
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
                               **call_columns(rng, n, 0.9, 240.0, 0.8)))
    # roaming abroad: a few calls home per day on top of normal life (cells come from the line)
    roamers = dutch[world.line_roaming[dutch]]
    counts = rng.poisson(2.0 * social, len(roamers))
    src = np.repeat(roamers, counts)
    n = len(src)
    b = world.line_number[dutch[rng.integers(0, len(dutch), n)]]
    scene.batches.append(batch(n, t=tl.sample(rng, n, SOCIAL), kind=CALL, a=world.line_number[src], b=b, mo=True,
                               line=src, **call_columns(rng, n, 0.8, 150.0)))
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


__all__ = ["Batch", "Population", "build_population", "normal_life", "number_line"]
