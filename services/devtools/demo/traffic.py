"""The demo's traffic: generated once to files (for the backtest), then streamed live to Kafka
at a pace that takes about ``--minutes``, with progress scraped from the services."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from services.devtools.demo.console import say, tail
from services.devtools.demo.processes import Run, scrape
from services.devtools.demo.signals import spawning


def duration_s(text: str) -> float:
    """A simulator duration (``3h``, ``90m``) in seconds."""
    from services.devtools.simulator.timeline import parse_duration

    return parse_duration(text) / 1000


def simulate(run: Run) -> tuple[Path, Path] | None:
    """Generate the traffic once to files (for the backtest); return (events, truth) paths."""
    sim_dir = run.out / "traffic"
    cmd = [sys.executable, "-m", "services.cli", "simulate", "--subscribers", str(run.args.subscribers),
           "--duration", run.args.sim_duration, "--seed", str(run.args.seed), "--out", str(sim_dir), "--quiet"]
    proc = subprocess.run(cmd, env=run.env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        say(f"simulate failed:\n{proc.stderr[-2000:]}")
        return None
    return sim_dir / "events.jsonl", sim_dir / "truth.jsonl"


def stream(run: Run, events_path: Path) -> tuple[Path | None, int]:
    """Stream the same traffic live at a pace that takes about --minutes; show progress."""
    size = sum(1 for _ in events_path.open("rb"))
    seconds = max(10.0, run.args.minutes * 60)
    rate = max(1.0, size / seconds)
    live_dir = run.out / "live"
    cmd = [sys.executable, "-m", "services.cli", "simulate", "--subscribers", str(run.args.subscribers),
           "--duration", run.args.sim_duration, "--seed", str(run.args.seed), "--out", str(live_dir),
           "--to-kafka", run.bootstrap, "--topic-prefix", run.prefix, "--rate", f"{rate:.1f}", "--quiet"]
    span_s = duration_s(run.args.sim_duration)
    say(f"streaming {size} simulated events at ~{rate:.0f}/s for ~{seconds / 60:.1f} min: "
        f"{run.args.sim_duration} of traffic, about {max(1.0, span_s / seconds):.0f}x faster than real time "
        "(scenarios: all)")
    producer: subprocess.Popen[bytes] | None = None
    try:
        with (run.out / "logs" / "simulate.log").open("ab") as log, spawning():
            producer = subprocess.Popen(cmd, env=run.env(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        watch(run, producer, seconds)
    finally:
        if producer is not None and producer.poll() is None:
            producer.send_signal(signal.SIGTERM)
            try:
                producer.wait(30)
            except subprocess.TimeoutExpired:
                producer.kill()
                producer.wait(10)
    if producer.returncode != 0:
        say(f"simulate --to-kafka exited with {producer.returncode}:\n{tail(run.out / 'logs' / 'simulate.log')}")
    truth = live_dir / "truth.jsonl"
    return (truth if truth.exists() else None), size


def watch(run: Run, producer: subprocess.Popen[bytes], seconds: float) -> None:
    """Live progress until the producer ends and the pipeline drained (bounded)."""
    last = scrape(run.services)
    drain_deadline: float | None = None
    with tqdm(total=round(seconds), desc="demo", unit="s", file=sys.stderr, bar_format=(
            "{desc} {bar} {elapsed}<{remaining} {postfix}")) as bar:
        while True:
            time.sleep(2.0)
            now = scrape(run.services)
            dt = max(1e-6, now.at - last.at)
            bar.set_postfix_str(f"events/s {(now.events - last.events) / dt:6.0f}  events {now.events:7.0f}  "
                                f"scored {now.scored:7.0f}  alerts {now.alerts:4.0f}  lag {now.lag:5.0f}  "
                                f"dlq {now.dlq:3.0f}")
            bar.update(min(2, max(0, bar.total - bar.n)))
            last = now
            if producer.poll() is None:
                continue
            # The producer is done: wait for ingest and scorer to catch up (lag 0), at most 90 s.
            drain_deadline = drain_deadline or time.monotonic() + 90
            if now.lag == 0 or time.monotonic() > drain_deadline:
                break
