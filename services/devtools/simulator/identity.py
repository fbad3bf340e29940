"""Innocent identity changes: phone upgrades, SIM swaps (lost phone, eSIM; some with a new phone and
the one-time codes of re-enrolling banking apps, a takeover's look-alike), activations, port-ins
and port-outs, and the lines' call-forwarding and subscription changes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.devtools.simulator import catalog
from services.devtools.simulator.population import Population
from services.devtools.simulator.timeline import BUSINESS, Timeline
from services.devtools.simulator.world import (
    CHANGE_CODE,
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
