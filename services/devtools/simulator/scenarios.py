"""Labelled fraud scenarios. Each call builds one instance and returns its events and truth.

``intensity`` scales a scenario's strength (rates and, more gently, the number of SIMs):
1.0 is the default, 0.5 makes fraud harder to see, 2.0 easier. Every instance has its own
window inside the run and its own random generator, so instances differ from each other.

Truth entities (plaintext; the truth file stays with the analyst like the raw events):

=====================  =================================================================
scenario               entities
=====================  =================================================================
sms_farm               the farm's numbers (number) and its modems (device)
sim_farm_device        the device rotating many IMSIs (device) and its SIMs (number)
sim_box                the gateway (device) and the SIMs it uses (number)
sim_swap_takeover      the victim's number after the swap (number)
wangiri                the one-ring calling number (number)
spoofed_bank_caller    the presented do-not-originate bank number (number)
slow_low_farm          the throttled farm's numbers (number) and its phones (device)
=====================  =================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.devtools.simulator import catalog
from services.devtools.simulator.identity import otp_sender_numbers
from services.devtools.simulator.population import Population
from services.devtools.simulator.timeline import FLAT, HOUR_MS, MINUTE_MS, SOCIAL, Timeline
from services.devtools.simulator.world import (
    CALL,
    CHANGE_CODE,
    OPERATOR_CODE,
    SIM,
    SMS,
    Change,
    Scene,
    Truth,
    World,
    batch,
)

I32 = npt.NDArray[np.int32]


@dataclass
class Context:
    world: World
    tl: Timeline
    pop: Population
    dead_numbers: I32          # unallocated +316 numbers on blast lists
    sorted_dutch: I32          # Dutch lines ordered by number (wangiri dials ranges)
    otp_senders: I32           # number indices of one-time-code senders


def make_context(world: World, tl: Timeline, pop: Population, n_subs: int) -> Context:
    order = np.argsort(np.asarray([world.numbers[i] for i in world.line_number[pop.dutch].tolist()]))
    return Context(world, tl, pop, world.new_mobile_numbers(max(50, n_subs // 10)), pop.dutch[order],
                   otp_sender_numbers(world, pop.params.otp_senders()))


def instances_per_scenario(n_subs: int) -> int:
    """At least three instances from 5000 subscribers on, growing with the log of the population."""
    if n_subs >= 5000:
        return 3 + int(math.log2(n_subs / 5000))
    return max(1, round(3 * n_subs / 5000))


def _operator(rng: np.random.Generator) -> tuple[str, int]:
    name = catalog.DUTCH_OPERATORS[int(rng.integers(0, len(catalog.DUTCH_OPERATORS)))][0]
    return name, OPERATOR_CODE[name]


def _cell(ctx: Context, code: int, rng: np.random.Generator) -> int:
    return int(ctx.world.random_cells(np.asarray([code], np.int8), rng)[0])


def _targets(ctx: Context, rng: np.random.Generator, n: int, dead_share: float = 0.15) -> I32:
    """Blast recipients: random subscribers (never contacted before) and dead numbers from bought lists."""
    subs = ctx.world.line_number[ctx.pop.dutch[rng.integers(0, len(ctx.pop.dutch), n)]]
    dead = ctx.dead_numbers[rng.integers(0, len(ctx.dead_numbers), n)]
    return np.where(rng.random(n) < dead_share, dead, subs).astype(np.int32)


def _truth_numbers(ctx: Context, scenario: str, lines: I32, start: int, end: int) -> list[Truth]:
    return [Truth(scenario, "number", ctx.world.numbers[n], start, end)
            for n in ctx.world.line_number[lines].tolist()]


def _truth_devices(ctx: Context, scenario: str, devices: I32, start: int, end: int) -> list[Truth]:
    return [Truth(scenario, "device", ctx.world.imei15(d), start, end) for d in devices.tolist()]


def _activations(ctx: Context, rng: np.random.Generator, lines: I32, before_ms: int, share: float) -> Scene:
    """SIM activations shortly before first use (the rest were activated before the run)."""
    scene = Scene()
    chosen = lines[rng.random(len(lines)) < share]
    t = before_ms - rng.integers(5 * MINUTE_MS, 3 * HOUR_MS, len(chosen))
    keep = t >= ctx.tl.start_ms
    chosen, t = chosen[keep], t[keep]
    w = ctx.world
    scene.batches.append(batch(len(chosen), t=t, kind=SIM, a=w.line_number[chosen], mo=True, line=chosen,
                               change=CHANGE_CODE["activation"], sim_imsi=w.line_imsi[chosen],
                               sim_imei=w.line_imei[chosen]))
    return scene


def sms_farm(ctx: Context, rng: np.random.Generator, intensity: float) -> Scene:
    """Smishing blast: a few modems full of prepaid SIMs sending URL SMS to never-contacted numbers."""
    w, tl = ctx.world, ctx.tl
    start, end = tl.window(rng, int(rng.uniform(1.0, 3.0) * HOUR_MS))
    op, code = _operator(rng)
    devices = w.new_devices(int(rng.integers(2, 5)), catalog.MODEM_TACS)
    lines = w.new_fraud_lines(max(3, int(rng.integers(6, 17) * min(2.0, math.sqrt(intensity)))), op, devices,
                              _cell(ctx, code, rng))
    hours = (end - start) / HOUR_MS
    counts = rng.poisson(60 * intensity * hours, len(lines))
    src = np.repeat(lines, counts)
    n = len(src)
    scene = _activations(ctx, rng, lines, start, 0.5)
    scene.batches.append(batch(n, t=tl.sample(rng, n, FLAT, start, end), kind=SMS, a=w.line_number[src],
                               b=_targets(ctx, rng, n), mo=True, line=src, url=rng.random(n) < 0.95, segments=1,
                               chars=rng.integers(100, 160, n)))
    scene.truth += _truth_numbers(ctx, "sms_farm", lines, start, end)
    scene.truth += _truth_devices(ctx, "sms_farm", devices, start, end)
    return scene


def sim_farm_device(ctx: Context, rng: np.random.Generator, intensity: float) -> Scene:
    """One device rotating many SIMs: each SIM receives one-time codes, sends a little, is swapped out."""
    w, tl = ctx.world, ctx.tl
    start, end = tl.window(rng, int(rng.uniform(2.0, 6.0) * HOUR_MS), latest=0.6)
    op, code = _operator(rng)
    device = w.new_devices(1, catalog.MODEM_TACS if rng.random() < 0.6 else catalog.PHONE_TACS)
    n_sims = max(5, int(rng.integers(20, 50) * intensity))
    lines = w.new_fraud_lines(n_sims, op, device, _cell(ctx, code, rng))
    slot = (end - start) / n_sims
    slot_start = (start + np.arange(n_sims) * slot).astype(np.int64)
    scene = Scene()
    # activation of each SIM as it goes into the device
    act = rng.random(n_sims) < 0.5
    scene.batches.append(batch(int(act.sum()), t=slot_start[act], kind=SIM, a=w.line_number[lines[act]], mo=True,
                               line=lines[act], change=CHANGE_CODE["activation"], sim_imsi=w.line_imsi[lines[act]],
                               sim_imei=device[0]))
    # one-time codes arriving on each SIM (mt, the SIM's device is the farm device)
    k_otp = rng.integers(1, 4, n_sims)
    pos = np.repeat(np.arange(n_sims), k_otp)
    n = len(pos)
    t = slot_start[pos] + (rng.random(n) * slot * 0.9).astype(np.int64) + 1000
    scene.batches.append(batch(n, t=t, kind=SMS, a=ctx.otp_senders[rng.integers(0, len(ctx.otp_senders), n)],
                               b=w.line_number[lines[pos]], mo=False, line=lines[pos], segments=1,
                               chars=rng.integers(40, 90, n)))
    # a little outgoing traffic (account verification, messaging-app registration)
    k_mo = rng.integers(0, 3, n_sims)
    pos = np.repeat(np.arange(n_sims), k_mo)
    n = len(pos)
    t = slot_start[pos] + (rng.random(n) * slot * 0.9).astype(np.int64) + 1000
    scene.batches.append(batch(n, t=t, kind=SMS, a=w.line_number[lines[pos]], b=_targets(ctx, rng, n, 0.0), mo=True,
                               line=lines[pos], segments=1, chars=rng.integers(5, 60, n)))
    scene.truth += _truth_devices(ctx, "sim_farm_device", device, start, end)
    # its SIMs are fraud lines too (each from its first event in the farm): a bank asked about
    # one of them at account registration should hear that it sat in a SIM farm
    scene.truth += _truth_numbers(ctx, "sim_farm_device", lines, start, end)
    return scene


def sim_box(ctx: Context, rng: np.random.Generator, intensity: float) -> Scene:
    """Interconnect bypass: a gateway on one cell turning international calls into local mobile calls."""
    w, tl = ctx.world, ctx.tl
    start, end = tl.window(rng, int(rng.uniform(4.0, 12.0) * HOUR_MS), earliest=0.02, latest=0.5)
    op, code = _operator(rng)
    device = w.new_devices(1, catalog.MODEM_TACS)
    lines = w.new_fraud_lines(max(4, int(rng.integers(8, 25) * min(2.0, math.sqrt(intensity)))), op, device,
                              _cell(ctx, code, rng))
    hours = (end - start) / HOUR_MS
    n = int(rng.poisson(60 * intensity * hours))
    src = lines[rng.integers(0, len(lines), n)]
    answered = rng.random(n) < 0.6
    duration = np.where(answered, np.clip(rng.lognormal(np.log(140), 0.9, n), 5, 3600), 0).astype(np.int32)
    b = ctx.world.line_number[ctx.pop.dutch[rng.integers(0, len(ctx.pop.dutch), n)]]
    scene = Scene()
    scene.batches.append(batch(n, t=tl.sample(rng, n, SOCIAL, start, end), kind=CALL, a=w.line_number[src], b=b,
                               mo=True, line=src, answered=answered, duration=duration))
    scene.truth += _truth_devices(ctx, "sim_box", device, start, end)
    scene.truth += _truth_numbers(ctx, "sim_box", lines, start, end)
    return scene


def sim_swap_takeover(ctx: Context, rng: np.random.Generator, intensity: float) -> Scene:
    """A fraudster swaps the victim's number onto a new SIM and device, then drains and scams."""
    if ctx.pop.params.random:
        return sim_swap_takeover_random(ctx, rng, intensity)
    w, tl = ctx.world, ctx.tl
    start, end = tl.window(rng, int(rng.uniform(1.0, 3.0) * HOUR_MS), earliest=0.1, latest=0.7)
    candidates = ctx.pop.dutch[~w.line_roaming[ctx.pop.dutch]]
    victim = int(candidates[int(rng.integers(0, len(candidates)))])
    number = int(w.line_number[victim])
    code = int(w.line_operator[victim])
    new_imsi = int(w.new_imsis([w.imsis[int(w.line_imsi[victim])][:5]])[0])
    new_device = int(w.new_devices(1, catalog.PHONE_TACS)[0])
    cell = _cell(ctx, code, rng)
    scene = Scene()
    scene.changes.append(Change(victim, start, imei=new_device, imsi=new_imsi))
    scene.silence_after.append((victim, start))
    scene.batches.append(batch(1, t=start, kind=SIM, a=number, mo=True, line=victim, change=CHANGE_CODE["swap"],
                               sim_imsi=new_imsi, imsi=new_imsi, cell=cell))
    lo = start + 2 * MINUTE_MS
    # bank one-time codes arrive on the new SIM
    n = int(rng.integers(2, 5))
    scene.batches.append(batch(n, t=tl.sample(rng, n, FLAT, lo, end), kind=SMS,
                               a=ctx.otp_senders[rng.integers(0, len(ctx.otp_senders), n)], b=number, mo=False,
                               line=victim, imei=new_device, imsi=new_imsi, cell=cell, chars=rng.integers(40, 90, n)))
    # "help me out" messages to the victim's contacts and links to strangers
    pos = int(np.flatnonzero(ctx.pop.lines == victim)[0])
    contacts = ctx.pop.contacts[ctx.pop.contact_start[pos]:ctx.pop.contact_start[pos + 1]]
    n_contacts = int(rng.integers(10, 31) * intensity)
    n_strangers = int(rng.integers(5, 16) * intensity)
    b = np.concatenate([contacts[rng.integers(0, len(contacts), n_contacts)], _targets(ctx, rng, n_strangers)])
    n = len(b)
    url = np.concatenate([rng.random(n_contacts) < 0.5, rng.random(n_strangers) < 0.8])
    scene.batches.append(batch(n, t=tl.sample(rng, n, FLAT, lo, end), kind=SMS, a=number, b=b, mo=True, line=victim,
                               imei=new_device, imsi=new_imsi, cell=cell, url=url, chars=rng.integers(60, 160, n)))
    # calls abroad (money mules, premium numbers)
    n = max(1, int(rng.integers(2, 7) * intensity))
    answered = np.ones(n, np.bool_)
    scene.batches.append(batch(n, t=tl.sample(rng, n, FLAT, lo, end), kind=CALL, a=number,
                               b=ctx.pop.foreign[rng.integers(0, len(ctx.pop.foreign), n)], mo=True, line=victim,
                               imei=new_device, imsi=new_imsi, cell=cell, answered=answered,
                               duration=rng.integers(30, 300, n)))
    scene.truth.append(Truth("sim_swap_takeover", "number", w.numbers[number], start, end))
    return scene


def sim_swap_takeover_random(ctx: Context, rng: np.random.Generator, intensity: float) -> Scene:
    """A takeover as this world's fraudsters do it (``params``: takeover_*), each instance drawn.

    The fraudster swaps the victim's number onto a new SIM, in its own phone or (sometimes) an
    old one of the victim's model, somewhere else (every event of the line from then on is on the
    fraudster's cell, the victim's own traffic stops), waits up to the world's first-act delay,
    receives one-time codes (or not), and uses the number: SMS to the victim's contacts ("new
    number, can you help me out") and to strangers, with links in the world's share, and calls
    abroad (mules, premium numbers). Some takeovers send no link at all; in the world's
    ``takeover_forwarding_share`` the fraudster also sets unconditional call forwarding within
    15 min of the swap.
    """
    w, tl = ctx.world, ctx.tl
    p = ctx.pop.params
    start, end = tl.window(rng, int(rng.uniform(1.0, 3.0) * HOUR_MS), earliest=0.1, latest=0.7)
    candidates = ctx.pop.dutch[~w.line_roaming[ctx.pop.dutch]]
    victim = int(candidates[int(rng.integers(0, len(candidates)))])
    number = int(w.line_number[victim])
    code = int(w.line_operator[victim])
    new_imsi = int(w.new_imsis([w.imsis[int(w.line_imsi[victim])][:5]])[0])
    new_phone = bool(rng.random() < p.takeover_new_device_share)
    device = int(w.new_devices(1, catalog.PHONE_TACS)[0]) if new_phone else int(w.line_imei[victim])
    cell = _cell(ctx, code, rng)
    scene = Scene()
    scene.changes.append(Change(victim, start, imei=device, imsi=new_imsi, cell=cell))
    scene.silence_after.append((victim, start))
    scene.batches.append(batch(1, t=start, kind=SIM, a=number, mo=True, line=victim, change=CHANGE_CODE["swap"],
                               sim_imsi=new_imsi, imsi=new_imsi, cell=cell))
    # unconditional call forwarding set around the swap, in the world's share of takeovers: drawn
    # from the instance's own generator so that every other draw of the world stays as it was
    forward = np.random.default_rng([victim, start])
    if forward.random() < p.takeover_forwarding_share:
        t_fwd = max(tl.start_ms + MINUTE_MS, start + int(forward.uniform(-15.0, 15.0) * MINUTE_MS))
        scene.batches.append(batch(1, t=t_fwd, kind=SIM, a=number, mo=True, line=victim,
                                   change=CHANGE_CODE["forwarding:set:unconditional"]))
    first = start + int(rng.uniform(1.0, max(1.0, p.takeover_first_act_minutes)) * MINUTE_MS)
    if rng.random() < p.takeover_codes_share:
        n = int(rng.integers(1, 6))
        t_codes = tl.sample(rng, n, FLAT, start + MINUTE_MS, end)
        scene.batches.append(batch(n, t=t_codes, kind=SMS,
                                   a=ctx.otp_senders[rng.integers(0, len(ctx.otp_senders), n)], b=number, mo=False,
                                   line=victim, imei=device, imsi=new_imsi, cell=cell, chars=rng.integers(40, 90, n)))
    pos = int(np.flatnonzero(ctx.pop.lines == victim)[0])
    contacts = ctx.pop.contacts[ctx.pop.contact_start[pos]:ctx.pop.contact_start[pos + 1]]
    n_sms = max(2, int(rng.integers(8, 40) * intensity))
    to_contact = rng.random(n_sms) < min(1.0, max(0.0, p.takeover_contact_share + rng.uniform(-0.1, 0.1)))
    b = np.where(to_contact, contacts[rng.integers(0, len(contacts), n_sms)], _targets(ctx, rng, n_sms))
    url = rng.random(n_sms) < min(1.0, max(0.0, p.takeover_link_share + rng.uniform(-0.1, 0.1)))
    t = tl.sample(rng, n_sms, FLAT, first, end)
    if len(t) < n_sms:      # the run ends before the first act: only the swap and codes are seen
        scene.truth.append(Truth("sim_swap_takeover", "number", w.numbers[number], start, end))
        return scene
    t[int(np.argmin(t))] = first
    scene.batches.append(batch(n_sms, t=t, kind=SMS, a=number, b=b, mo=True, line=victim, imei=device,
                               imsi=new_imsi, cell=cell, url=url, chars=rng.integers(60, 160, n_sms)))
    n = int(rng.integers(0, 7) * intensity)
    if n:
        scene.batches.append(batch(n, t=tl.sample(rng, n, FLAT, first, end), kind=CALL, a=number,
                                   b=ctx.pop.foreign[rng.integers(0, len(ctx.pop.foreign), n)], mo=True, line=victim,
                                   imei=device, imsi=new_imsi, cell=cell, answered=np.ones(n, np.bool_),
                                   duration=rng.integers(30, 300, n)))
    scene.truth.append(Truth("sim_swap_takeover", "number", w.numbers[number], start, end))
    return scene


def wangiri(ctx: Context, rng: np.random.Generator, intensity: float) -> Scene:
    """One-ring calls from a premium-rate number abroad to many Dutch numbers, hoping for call-backs."""
    w, tl = ctx.world, ctx.tl
    start, end = tl.window(rng, int(rng.uniform(1.0, 3.0) * HOUR_MS))
    prefix, digits = catalog.WANGIRI_PREFIXES[int(rng.integers(0, len(catalog.WANGIRI_PREFIXES)))]
    caller = int(w.new_numbers(prefix, digits, 1)[0])
    hours = (end - start) / HOUR_MS
    n = min(len(ctx.sorted_dutch), int(rng.poisson(400 * intensity * hours)))
    if rng.random() < 0.5:   # dialling a number range
        first = int(rng.integers(0, max(1, len(ctx.sorted_dutch) - n)))
        recv = ctx.sorted_dutch[first:first + n]
        t = np.sort(tl.sample(rng, n, FLAT, start, end))
    else:
        recv = ctx.pop.dutch[rng.integers(0, len(ctx.pop.dutch), n)]
        t = tl.sample(rng, n, FLAT, start, end)
    n = len(recv)
    answered = rng.random(n) < 0.03
    scene = Scene()
    scene.batches.append(batch(n, t=t, kind=CALL, a=caller, b=w.line_number[recv], mo=False, line=recv,
                               answered=answered, duration=np.where(answered, rng.integers(1, 4, n), 0)))
    back = np.flatnonzero(rng.random(n) < 0.03)
    m = len(back)
    scene.batches.append(batch(m, t=t[back] + rng.integers(MINUTE_MS, 30 * MINUTE_MS, m), kind=CALL,
                               a=w.line_number[recv[back]], b=caller, mo=True, line=recv[back],
                               answered=True, duration=rng.integers(20, 180, m)))
    scene.truth.append(Truth("wangiri", "number", w.numbers[caller], start, end))
    return scene


def spoofed_bank_caller(ctx: Context, rng: np.random.Generator, intensity: float, instance: int) -> Scene:
    """Calls presenting a do-not-originate bank number: "this is your bank's security desk"."""
    w, tl = ctx.world, ctx.tl
    start, end = tl.window(rng, int(rng.uniform(2.0, 5.0) * HOUR_MS), earliest=0.05, latest=0.6)
    bank_text = catalog.BANK_NUMBERS[instance % len(catalog.BANK_NUMBERS)]
    bank = w.add_number(bank_text)
    hours = (end - start) / HOUR_MS
    n = int(rng.poisson(30 * intensity * hours))
    recv = ctx.pop.dutch[rng.integers(0, len(ctx.pop.dutch), n)]
    answered = rng.random(n) < 0.5
    duration = np.where(answered, np.clip(rng.lognormal(np.log(300), 0.8, n), 10, 3600), 0).astype(np.int32)
    scene = Scene()
    scene.batches.append(batch(n, t=tl.sample(rng, n, SOCIAL, start, end), kind=CALL, a=bank, b=w.line_number[recv],
                               mo=False, line=recv, answered=answered, duration=duration))
    scene.truth.append(Truth("spoofed_bank_caller", "number", bank_text, start, end))
    return scene


def slow_low_farm(ctx: Context, rng: np.random.Generator, intensity: float) -> Scene:
    """A farm throttled below naive volume thresholds: a few URL SMS per SIM per hour, all day."""
    w, tl = ctx.world, ctx.tl
    start, _ = tl.window(rng, HOUR_MS, earliest=0.0, latest=0.2)
    end = tl.end_ms
    op, code = _operator(rng)
    devices = w.new_devices(int(rng.integers(1, 3)), catalog.PHONE_TACS)
    lines = w.new_fraud_lines(max(3, int(rng.integers(6, 15) * min(2.0, math.sqrt(intensity)))), op, devices,
                              _cell(ctx, code, rng))
    hours = (end - start) / HOUR_MS
    counts = rng.poisson(6 * intensity * hours, len(lines))
    src = np.repeat(lines, counts)
    n = len(src)
    scene = _activations(ctx, rng, lines, start, 0.7)
    scene.batches.append(batch(n, t=tl.sample(rng, n, SOCIAL, start, end), kind=SMS, a=w.line_number[src],
                               b=_targets(ctx, rng, n, 0.1), mo=True, line=src, url=rng.random(n) < 0.7, segments=1,
                               chars=rng.integers(80, 160, n)))
    scene.truth += _truth_numbers(ctx, "slow_low_farm", lines, start, end)
    # the phones holding the farm's SIMs are fraud entities too (left unlabelled they would
    # count as false alarms against a scorer that finds them)
    scene.truth += _truth_devices(ctx, "slow_low_farm", devices, start, end)
    return scene


Builder = Callable[[Context, np.random.Generator, float, int], Scene]

BUILDERS: dict[str, Builder] = {
    "sms_farm": lambda c, r, x, i: sms_farm(c, r, x),
    "sim_farm_device": lambda c, r, x, i: sim_farm_device(c, r, x),
    "sim_box": lambda c, r, x, i: sim_box(c, r, x),
    "sim_swap_takeover": lambda c, r, x, i: sim_swap_takeover(c, r, x),
    "wangiri": lambda c, r, x, i: wangiri(c, r, x),
    "spoofed_bank_caller": spoofed_bank_caller,
    "slow_low_farm": lambda c, r, x, i: slow_low_farm(c, r, x),
}
# The do-not-originate list is short: one spoofed bank per instance, at most one instance per bank.
MAX_INSTANCES = {"spoofed_bank_caller": len(catalog.BANK_NUMBERS)}
assert set(BUILDERS) == set(catalog.SCENARIOS)
