"""Build a whole simulated run and render it as raw contract v1 events.

``simulate(config)`` is pure: the same config (including the seed) gives the same events and
truth, byte for byte. Each part of the world draws from its own seeded generator, so choosing
fewer scenarios does not change normal life. ``config.world`` says what kind of network the run
is: ``random`` draws the world's parameters from the seed (``services.devtools.simulator.params``),
``fixed`` is the reference world for regression comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson

from services.devtools.simulator import catalog
from services.devtools.simulator.exceptions import SimulatorError
from services.devtools.simulator.negatives import hard_negatives
from services.devtools.simulator.normal import normal_life
from services.devtools.simulator.params import WorldParams, world_params
from services.devtools.simulator.population import build_population
from services.devtools.simulator.scenarios import BUILDERS, MAX_INSTANCES, instances_per_scenario, make_context
from services.devtools.simulator.timeline import BUSINESS, Timeline, iso, local_hours, rfc3339
from services.devtools.simulator.world import (
    CALL,
    CHANGES,
    SMS,
    Batch,
    Change,
    Negative,
    Scene,
    Truth,
    World,
    concat,
    take,
)

I32 = npt.NDArray[np.int32]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SimConfig:
    subscribers: int
    duration_ms: int
    seed: int
    start_ms: int
    scenarios: tuple[str, ...] = catalog.SCENARIOS
    intensity: float = 1.0
    world: str = "fixed"      # "random": parameters drawn from the seed; "fixed": the reference world
    # normal life only, in [start_ms - warmup_ms, start_ms): fills the scorer's windows and state
    # before the evaluated run [start_ms, start_ms + duration_ms), where all fraud happens
    warmup_ms: int = 0


@dataclass
class Simulation:
    """A finished run: events sorted by event time with every derived column resolved."""

    config: SimConfig
    world: World
    events: Batch
    operator: npt.NDArray[np.int8]
    imei: I32
    imsi: I32
    cell: I32
    truth: list[Truth]
    params: WorldParams | None = None
    negatives: list[Negative] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.events.size


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def _drop_silenced(events: Batch, world: World, scene: Scene) -> Batch:
    keep = np.ones(events.size, np.bool_)
    for line, t in scene.silence_after:      # the line's own outgoing traffic stops
        keep &= ~((events.line == line) & events.mo & (events.t >= t))
    for line, t in scene.silence_before:     # nothing of the line before it exists
        number = world.line_number[line]
        keep &= ~(((events.line == line) | (events.a == number) | (events.b == number)) & (events.t < t))
    return take(events, keep)


def _apply_changes(events: Batch, imei: I32, imsi: I32, changes: list[Change]) -> None:
    if not changes:
        return
    changed_lines = np.unique(np.asarray([c.line for c in changes], np.int32))
    subset = np.flatnonzero(np.isin(events.line, changed_lines))
    sub_line, sub_t = events.line[subset], events.t[subset]
    sub_free_imei, sub_free_imsi = events.imei[subset] < 0, events.imsi[subset] < 0
    sub_free_cell = events.cell[subset] < 0
    for change in sorted(changes, key=lambda c: (c.t_ms, c.line)):
        hit = (sub_line == change.line) & (sub_t >= change.t_ms)
        if change.imei >= 0:
            imei[subset[hit & sub_free_imei]] = change.imei
        if change.imsi >= 0:
            imsi[subset[hit & sub_free_imsi]] = change.imsi
        if change.cell >= 0:      # the line's own events from then on (cells are resolved later)
            events.cell[subset[hit & sub_free_cell]] = change.cell


def _start_at_first_act(scene: Scene, world: World, tl: Timeline) -> None:
    """Move each truth entity's ``start`` to its own first fraudulent act inside the run.

    A scenario's window starts with its first event, but many of its entities act later (a SIM
    box line's first call, a farm SIM's first message, a device's first use): time to detect
    counts from when the entity itself could first be seen doing something. A number acts when
    it is the calling/sending party, has a SIM change, or receives in a scenario on its own line
    (a farm SIM's one-time codes); a device acts on any of its events.
    """
    if not scene.batches or not scene.truth:
        return
    events = concat(scene.batches)
    events = take(events, (events.t >= tl.start_ms) & (events.t < tl.end_ms))
    if not events.size:
        return
    number_index = {world.numbers[a]: a for a in np.unique(events.a).tolist()}
    received = ~events.mo
    number_index.update({world.numbers[b]: b for b in np.unique(events.b[received]).tolist()
                         if world.numbers[b] not in number_index})
    imei = np.where(events.imei >= 0, events.imei, world.line_imei[events.line])
    device_index: dict[str, int] = {}
    for column in (imei, events.sim_imei):
        for device in np.unique(column[column >= 0]).tolist():
            device_index[world.imei15(device)] = device
    for truth in scene.truth:
        later = events.t >= truth.start_ms
        if truth.entity_type == "number":
            index = number_index.get(truth.identifier)
            acts = later & ((events.a == index) | (received & (events.b == index))) if index is not None else None
        else:
            index = device_index.get(truth.identifier)
            acts = later & ((imei == index) | (events.sim_imei == index)) if index is not None else None
        if acts is not None and acts.any():
            truth.start_ms = min(int(events.t[acts].min()), truth.end_ms)


def simulate(config: SimConfig, progress: Progress | None = None) -> Simulation:
    say = progress or (lambda _msg: None)
    if config.warmup_ms < 0:
        raise SimulatorError(f"warm-up {config.warmup_ms} ms is negative")
    # the evaluated run: every fraud scenario and its truth window lie inside it
    tl = Timeline(config.start_ms, config.duration_ms)
    # normal life (and hard negatives) span the warm-up too
    life = Timeline(config.start_ms - config.warmup_ms, config.duration_ms + config.warmup_ms) \
        if config.warmup_ms else tl
    params = world_params(config.world, config.seed)
    world = World(_rng(config.seed, 0))
    world.build_cells(max(40, config.subscribers // 150))
    say("population")
    pop = build_population(world, config.subscribers, _rng(config.seed, 1), params)
    say("normal life")
    normal = normal_life(world, life, pop, _rng(config.seed, 2), config.subscribers)
    if params.random:
        normal.extend(hard_negatives(world, life, pop, [_rng(config.seed, 20 + k) for k in range(5)],
                                     config.subscribers))
    ctx = make_context(world, tl, pop, config.subscribers)
    fraud = Scene()
    n_inst = instances_per_scenario(config.subscribers)
    for s_index, name in enumerate(catalog.SCENARIOS):
        if name not in config.scenarios:
            continue
        say(f"scenario {name}")
        for i in range(min(n_inst, MAX_INSTANCES.get(name, n_inst))):
            intensity = config.intensity * params.fraud_intensity.get(name, 1.0)
            scene = BUILDERS[name](ctx, _rng(config.seed, 100 + s_index, i), intensity, i)
            for entity in scene.truth:
                entity.instance = f"{name}#{i}"
            _start_at_first_act(scene, world, tl)
            fraud.extend(scene)

    say("ordering")
    silences = Scene(silence_after=normal.silence_after + fraud.silence_after,
                     silence_before=normal.silence_before + fraud.silence_before)
    fraud_events = concat(fraud.batches)
    # fraud is not pre-warmed: no scenario event falls in the warm-up
    fraud_events = take(fraud_events, (fraud_events.t >= tl.start_ms) & (fraud_events.t < tl.end_ms))
    events = concat([_drop_silenced(concat(normal.batches), world, silences), fraud_events])
    inside = (events.t >= life.start_ms) & (events.t < life.end_ms)
    events = take(events, inside)
    events = take(events, np.argsort(events.t, kind="stable"))

    line = events.line
    operator = world.line_operator[line]
    imei = np.where(events.imei >= 0, events.imei, world.line_imei[line]).astype(np.int32)
    imsi = np.where(events.imsi >= 0, events.imsi, world.line_imsi[line]).astype(np.int32)
    _apply_changes(events, imei, imsi, normal.changes + fraud.changes)
    # cells: explicit, abroad (roaming), at work in business hours, else at home
    rng = _rng(config.seed, 3)
    hours = local_hours(events.t)
    at_work = (np.asarray(BUSINESS)[hours] > 0.5) & (rng.random(events.size) < 0.7)
    cell = np.where(at_work, world.line_work_cell[line], world.line_home_cell[line])
    roaming = world.line_roaming[line]
    if len(world.visited_cells):
        abroad = world.visited_cells[(line.astype(np.int64) * 7 + rng.integers(0, 3, events.size))
                                     % len(world.visited_cells)]
        cell = np.where(roaming, abroad, cell)
    cell = np.where(events.cell >= 0, events.cell, cell).astype(np.int32)
    truth = sorted(fraud.truth, key=lambda tr: (catalog.SCENARIOS.index(tr.scenario), tr.start_ms, tr.entity_type,
                                                 tr.identifier))
    # hard negatives are measured on the evaluated run: those with traffic in it
    evaluated = events.t >= tl.start_ms
    present = {"number": set(np.unique(np.concatenate([events.a[evaluated], events.b[evaluated]])).tolist()),
               "device": set(np.unique(np.concatenate([imei[evaluated], events.sim_imei[evaluated]])).tolist())}
    return Simulation(config, world, events, operator, imei, imsi, cell, truth, params,
                      _negatives(normal.negatives, fraud.truth, world, present))


def _negatives(labels: list[Negative], truth: list[Truth], world: World, present: dict[str, set[int]],
               ) -> list[Negative]:
    """Hard-negative labels, one per (class, entity), of entities in the run's traffic, minus
    entities that are fraud in this run (a SIM-swap victim in a family phone is fraud from the
    swap on)."""
    fraud = {(t.entity_type, t.identifier) for t in truth}
    seen: set[tuple[str, str, int]] = set()
    out: list[Negative] = []
    # "otp_receiver" is everyone who got one-time codes: kept for the ones in no other class, so
    # that it measures people receiving codes in ordinary lives (a family phone's SIM that gets a
    # code counts as family_phone)
    other = {(neg.entity_type, neg.index) for neg in labels if neg.cls != "otp_receiver"}
    labels = [neg for neg in labels if neg.cls != "otp_receiver" or (neg.entity_type, neg.index) not in other]
    for neg in labels:
        ident = world.numbers[neg.index] if neg.entity_type == "number" else world.imei15(neg.index)
        key = (neg.cls, neg.entity_type, neg.index)
        if key in seen or (neg.entity_type, ident) in fraud or neg.index not in present[neg.entity_type]:
            continue
        seen.add(key)
        out.append(neg)
    return out


def _national(number: str) -> str:
    return "0" + number[3:] if number.startswith("+31") else number


def render(sim: Simulation, shift_ms: int = 0, time_scale: float = 1.0, chunk: int = 20_000,
           ) -> Iterator[list[tuple[str, bytes]]]:
    """Yield chunks of ``(key, json line)`` for the events, in event-time order.

    ``shift_ms`` and ``time_scale`` re-time the run for live streaming: an event at ``t``
    becomes ``start + shift + (t - start) / time_scale``. The key is the a_number (sms, call)
    or the msisdn (sim), as a telco would partition its raw topic.
    """
    world, ev = sim.world, sim.events
    start = sim.config.start_ms
    t = ev.t if (shift_ms == 0 and time_scale == 1.0) else (
        start + shift_ms + ((ev.t - start) / time_scale).astype(np.int64))
    style = {catalog.OPERATORS.index(op[0]): (op[3] == "local", op[4], op[5]) for op in catalog.DUTCH_OPERATORS}
    style[catalog.OPERATORS.index(catalog.ROAMING_PARTNER)] = (False, 0.0, 0.0)
    rng = _rng(sim.config.seed, 4)
    national_draw = rng.random(ev.size)
    imeisv_draw = rng.random(ev.size)
    local_mask = np.asarray([style[int(o)][0] for o in range(len(catalog.OPERATORS))])[sim.operator]
    times: list[str] = [""] * ev.size
    for is_local in (True, False):
        idx = np.flatnonzero(local_mask == is_local)
        for i, text in zip(idx.tolist(), rfc3339(t[idx], local=is_local), strict=True):
            times[i] = text
    national_share = np.asarray([style[o][1] for o in range(len(catalog.OPERATORS))])[sim.operator]
    imeisv_share = np.asarray([style[o][2] for o in range(len(catalog.OPERATORS))])[sim.operator]
    as_national = (national_draw < national_share).tolist()
    as_imeisv = (imeisv_draw < imeisv_share).tolist()

    numbers, imeis, imsis, cells = world.numbers, world.imeis, world.imsis, world.cells
    imei15 = [body + catalog.luhn_check_digit(body) for body in imeis]
    imeisv = [body + f"{int(body[-2:]) % 20:02d}" for body in imeis]
    operators = catalog.OPERATORS
    cols = [c.tolist() for c in (ev.kind, ev.a, ev.b, ev.mo, sim.operator, sim.imei, sim.imsi, sim.cell,
                                 ev.segments, ev.url, ev.chars, ev.duration, ev.answered, ev.change,
                                 ev.sim_imei, ev.sim_imsi)]
    out: list[tuple[str, bytes]] = []
    dumps = orjson.dumps
    for i, (kind, a, b, mo, op, imei, imsi, cell, seg, url, chars, dur, ans, change, s_imei,
            s_imsi) in enumerate(zip(*cols, strict=True)):
        op_name = operators[op]
        change_name = CHANGES[change] if change >= 0 else ""
        line_event = change_name.partition(":")[0] if kind not in (SMS, CALL) and ":" in change_name else ""
        event: dict[str, object] = {
            "schema_version": 1,
            "event_id": f"{op_name}-{i:010d}",
            "operator": op_name,
            "type": "sms" if kind == SMS else ("call" if kind == CALL else (line_event or "sim")),
            "occurred_at": times[i],
        }
        a_text = numbers[a]
        if line_event:
            # a forwarding or subscription lifecycle change of the line: no device fields
            parts = change_name.split(":")
            event[line_event] = ({"action": parts[1], "kind": parts[2], "msisdn": a_text} if line_event == "forwarding"
                                 else {"change": parts[1], "msisdn": a_text})
            out.append((a_text, dumps(event)))
            if len(out) >= chunk:
                yield out
                out = []
            continue
        if kind in (SMS, CALL):
            b_text = numbers[b]
            if as_national[i]:
                a_text, b_text = _national(a_text), _national(b_text)
            event["a_number"] = a_text
            event["b_number"] = b_text
            event["direction"] = "mo" if mo else "mt"
            key = a_text
        else:
            key = a_text
        if imei >= 0 and change_name != "swap":   # a swapped-in SIM's device is not known yet
            event["imei"] = imeisv[imei] if as_imeisv[i] else imei15[imei]
        if imsi >= 0:
            event["imsi"] = imsis[imsi]
        if cell >= 0:
            event["cell_id"] = cells[cell]
        if kind == SMS:
            event["sms"] = {"segments": seg, "has_url": url, "chars": chars}
        elif kind == CALL:
            event["call"] = {"duration_s": dur, "answered": ans}
        else:
            sim_part: dict[str, object] = {"change": change_name, "msisdn": a_text}
            if s_imsi >= 0:
                sim_part["imsi"] = imsis[s_imsi]
            if s_imei >= 0:
                sim_part["imei"] = imei15[s_imei]
            event["sim"] = sim_part
        out.append((key, dumps(event)))
        if len(out) >= chunk:
            yield out
            out = []
    if out:
        yield out


def truth_lines(sim: Simulation, shift_ms: int = 0, time_scale: float = 1.0) -> list[bytes]:
    start = sim.config.start_ms

    def retime(t: int) -> int:
        return t if (shift_ms == 0 and time_scale == 1.0) else start + shift_ms + int((t - start) / time_scale)

    lines = [orjson.dumps({"scenario": tr.scenario, "entity_type": tr.entity_type, "identifier": tr.identifier,
                           "start": iso(retime(tr.start_ms)), "end": iso(retime(tr.end_ms)),
                           "instance": tr.instance})
             for tr in sim.truth]
    # normal entities of the hard-negative classes: "label": "negative", no scenario
    world = sim.world
    for neg in sim.negatives:
        ident = world.numbers[neg.index] if neg.entity_type == "number" else world.imei15(neg.index)
        lines.append(orjson.dumps({"label": "negative", "class": neg.cls, "entity_type": neg.entity_type,
                                   "identifier": ident}))
    return lines


def params_line(sim: Simulation) -> bytes:
    """The drawn world parameters (``world.json``), so a report can state which world it measured."""
    params = sim.params or world_params(sim.config.world, sim.config.seed)
    return orjson.dumps({"world": params.to_json(), "subscribers": sim.config.subscribers,
                         "duration_ms": sim.config.duration_ms, "seed": sim.config.seed,
                         "warmup_ms": sim.config.warmup_ms, "evaluated_from": iso(sim.config.start_ms),
                         "intensity": sim.config.intensity, "scenarios": list(sim.config.scenarios)},
                        option=orjson.OPT_INDENT_2)


def registry_csv(sim: Simulation) -> bytes:
    """The world's sender-ID registry (``registry.csv``, the format ``fraudradar registry import`` writes):
    every A2P sender of the world with its category, as the operators' registry would list it.
    A short code that sends one-time codes is registered as ``otp``; the backtest gives the
    scorer this registry, so categories come from it, never from a list of names."""
    params = sim.params or world_params(sim.config.world, sim.config.seed)
    rows = ["sender_id,owner,category,aggregators"]
    for sender in params.a2p_senders:
        category = "otp" if sender.otp and sender.name.isdigit() else sender.category
        rows.append(f"{sender.name},{sender.name} (simulated),{category},")
    return ("\n".join(rows) + "\n").encode()
