"""``fraudradar simulate``: labelled traffic of a Dutch mobile network, to files or live to Kafka.

    fraudradar simulate --subscribers 20000 --duration 6h --seed 7 --out D
    fraudradar simulate --subscribers 5000 --duration 2h --seed 1 --out D --to-kafka 127.0.0.1:9092 --rate 500

Writes ``D/events.jsonl`` (raw contract v1, event-time order), ``D/truth.jsonl`` (one line per
fraudulent entity, and one per normal entity of a hard-negative class with ``"label":
"negative"``) and ``D/world.json`` (the world's drawn parameters). ``--world random`` (default)
draws the network's parameters from the seed (docs/simulator.md, "Randomised worlds"): another
seed is another world. ``--world fixed`` is the reference world, for regression comparisons.
Same arguments and seed give the same bytes. Live mode re-times the run
so event time follows wall time at about ``--rate`` events per second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from services.devtools.simulator import catalog
from services.devtools.simulator.exceptions import SimulatorError
from services.devtools.simulator.generate import (
    SimConfig,
    Simulation,
    params_line,
    registry_csv,
    render,
    simulate,
    truth_lines,
)
from services.devtools.simulator.params import WORLDS
from services.devtools.simulator.timeline import DEFAULT_START, parse_duration, parse_start, parse_warmup


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fraudradar simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", type=int, required=True, help="normal subscribers (e.g. 100000)")
    p.add_argument("--duration", default="24h", help="run length: 90m, 6h, 24h, 2d (default 24h)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--scenarios", default=",".join(catalog.SCENARIOS),
                   help="comma-separated fraud scenarios, 'none' for none (default: all seven)")
    p.add_argument("--intensity", type=float, default=1.0, help="fraud strength (1.0 default; 0.5 subtler)")
    p.add_argument("--world", default="random", choices=WORLDS,
                   help="random: world parameters drawn from the seed (default); fixed: the reference world")
    p.add_argument("--start", default=DEFAULT_START,
                   help=f"event time of the run start, RFC 3339 (default {DEFAULT_START}); 'now' = wall clock")
    p.add_argument("--warmup", default="0",
                   help="normal life only, before --start: fills the scorer's state before the evaluated run "
                        "(e.g. 24h; default 0 = none). Fraud happens only from --start on")
    p.add_argument("--out", required=True, type=Path, help="output directory (events.jsonl, truth.jsonl)")
    p.add_argument("--to-kafka", metavar="BOOTSTRAP", help="stream live into the raw topic instead of a file")
    p.add_argument("--rate", type=float, default=1000.0,
                   help="live mode: events per second (0 = as fast as possible, ending now)")
    p.add_argument("--topic-prefix", default="", help="live mode: prefix of the raw topic name")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _scenarios(text: str) -> tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in catalog.SCENARIOS]
    if unknown:
        raise SimulatorError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(catalog.SCENARIOS)}")
    return names


def config_from_args(args: argparse.Namespace) -> SimConfig:
    if args.subscribers < 100:
        raise SimulatorError("--subscribers must be at least 100")
    if args.intensity <= 0:
        raise SimulatorError("--intensity must be positive")
    start_ms = int(time.time() * 1000) if args.start == "now" else parse_start(args.start)
    start_ms -= start_ms % 1000
    return SimConfig(subscribers=args.subscribers, duration_ms=parse_duration(args.duration), seed=args.seed,
                     start_ms=start_ms, scenarios=_scenarios(args.scenarios), intensity=args.intensity,
                     world=args.world, warmup_ms=parse_warmup(args.warmup))


def run_simulation(config: SimConfig, quiet: bool) -> Simulation:
    stages = 4 + len(config.scenarios)
    with tqdm(total=stages, desc="simulate", unit="step", disable=quiet, file=sys.stderr) as bar:
        def say(stage: str) -> None:
            bar.set_postfix_str(stage)
            bar.update(1)

        return simulate(config, say)


def write_files(sim: Simulation, out: Path, quiet: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth.jsonl").write_bytes(b"".join(line + b"\n" for line in truth_lines(sim)))
    (out / "world.json").write_bytes(params_line(sim) + b"\n")
    (out / "registry.csv").write_bytes(registry_csv(sim))
    tmp = out / "events.jsonl.part"
    with tmp.open("wb") as fh, tqdm(total=sim.size, desc="write events", unit="ev", unit_scale=True,
                                    disable=quiet, file=sys.stderr) as bar:
        for chunk in render(sim):
            fh.write(b"\n".join(line for _, line in chunk) + b"\n")
            bar.update(len(chunk))
    tmp.replace(out / "events.jsonl")


def stream_to_kafka(sim: Simulation, args: argparse.Namespace) -> int:
    """Re-time the run to wall clock, produce it to ``<prefix>telco.events`` at ``--rate``."""
    from kafka import KafkaProducer

    from services.common.config import CommonSettings
    from services.common.topics import RAW, topic_name

    if sim.size == 0:
        raise SimulatorError("nothing to stream: the run has no events")
    start = sim.config.start_ms
    first, last = int(sim.events.t[0]), int(sim.events.t[-1])
    span_s = max(1.0, (last - first) / 1000)
    now_ms = int(time.time() * 1000)
    if args.rate > 0:
        # compress event time so that ~rate events/s arrive while event time tracks wall time
        time_scale = max(1.0, span_s * args.rate / sim.size)
        shift_ms = now_ms - start - int((first - start) / time_scale)
    else:
        time_scale = 1.0
        shift_ms = now_ms - last   # history that ends now, sent as fast as possible
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "truth.jsonl").write_bytes(b"".join(line + b"\n" for line in truth_lines(sim, shift_ms, time_scale)))
    (args.out / "world.json").write_bytes(params_line(sim) + b"\n")

    settings = CommonSettings()
    cfg: dict[str, Any] = settings.kafka_config()
    cfg["bootstrap_servers"] = args.to_kafka.split(",")
    producer = KafkaProducer(**cfg, acks="all", linger_ms=20, batch_size=256 * 1024, client_id="fraudradar-simulate")
    topic = topic_name(args.topic_prefix, RAW)
    retimed = start + shift_ms + ((sim.events.t - start) / time_scale).astype(np.int64)
    sent = 0
    futures = []
    try:
        with tqdm(total=sim.size, desc=f"produce {topic}", unit="ev", unit_scale=True, disable=args.quiet,
                  file=sys.stderr) as bar:
            for chunk in render(sim, shift_ms, time_scale, chunk=500):
                for key, value in chunk:
                    if args.rate > 0:
                        wait_s = (int(retimed[sent]) - time.time() * 1000) / 1000
                        if wait_s > 0.005:
                            time.sleep(min(wait_s, 1.0))
                    futures.append(producer.send(topic, key=key.encode(), value=value))
                    sent += 1
                bar.update(len(chunk))
                if len(futures) > 20_000:
                    for fut in futures:
                        fut.get(timeout=60)
                    futures = []
            producer.flush(timeout=120)
            for fut in futures:
                fut.get(timeout=60)
    finally:
        producer.close(timeout=10)
    print(f"produced {sent} events to {topic} (time scale x{time_scale:.1f}); truth in {args.out / 'truth.jsonl'}",
          file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        started = time.perf_counter()
        sim = run_simulation(config, args.quiet)
        if args.to_kafka:
            return stream_to_kafka(sim, args)
        write_files(sim, args.out, args.quiet)
    except SimulatorError as exc:
        print(f"fraudradar simulate: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    if not args.quiet:
        print(f"{sim.size} events, {len(sim.truth)} truth entities in {elapsed:.1f}s -> {args.out}", file=sys.stderr)
    return 0
