"""``fraudradar demo``: the whole pipeline on this machine, with simulated traffic, in one command.

    fraudradar demo [--minutes 3] [--out demo-out]

Starts (or reuses) the local Kafka broker, creates the topics under a fresh prefix, starts
ingest, scorer and API as subprocesses, streams a simulated mix of normal traffic and fraud
scenarios for about ``--minutes``, shows live progress (events/s, alerts, lag), then prints
injected fraud against what was flagged (with time to detect), a few real API answers (token →
lookup of a flagged number → alert feed), runs the backtest on the same traffic for an HTML
report, writes ``<out>/config/bank.env`` (the API's URL, the demo bank's client id and secret, a
flagged and a clean number: what docs/bank-guide.md runs against) and prints how to use it.

``--serve`` keeps ingest, scorer and API up after that until Ctrl-C or SIGTERM, so the bank
guide's commands can be run against them; without it the services stop when the demo ends.
Either way, Ctrl-C (SIGINT) and SIGTERM stop every child the demo started. A broker the demo
started itself (none was running, no ``--bootstrap``) starts on empty data (what an earlier
demo left is deleted first, so the cache does not grow run after run) and stops with the demo;
a broker that was already running (``fraudradar kafka up``) is reused and left running, with
the topics of earlier demo runs deleted.

Blocking: all of it, by design (minutes). Each step says what it waits for; a service that is
not part of this checkout yet is reported as such and the demo carries on without it.
``--setup-only`` writes keys, the token signing key and a demo partner into ``--out`` and exits
(docker-compose.yml uses it).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from tqdm import tqdm

from services.devtools.kafka_local import (
    KafkaStartError,
    KafkaToolMissing,
    LocalKafka,
    cache_dir,
    free_port,
    libs_dir,
    purge_broker_data,
)

DEMO_PARTNER = "demo-bank"
BANK_ENV = "bank.env"
# The first commands of docs/bank-guide.md after ``source bank.env`` (tests/deploy/test_bank_guide.py
# checks the guide's blocks start with them): the demo prints them after writing bank.env, so
# what it prints and what the guide says cannot differ.
GUIDE_FIRST_COMMANDS = (
    """TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \\
     -d purpose=dpv:FraudPreventionAndDetection "$API_URL/oauth2/token" \\
     | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')""",
    "curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n"
    '     -d "{\\"phoneNumber\\": \\"$FLAGGED_NUMBER\\"}" "$API_URL/v1/risk/numbers:lookup"',
)


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived: stop every child and leave."""


@dataclass
class _Signals:
    """SIGTERM/SIGINT seen by the demo. While a child is being started (``spawning``), the first
    signal is held back and raised once the start returned: raised inside ``Popen`` it would
    leave a child running that no one holds a handle to, and so no one stops."""

    received: list[int] = field(default_factory=list)
    spawning: int = 0
    held: bool = False


_SIGNALS = _Signals()


@contextmanager
def _spawning() -> Iterator[None]:
    """Hold SIGTERM/SIGINT back while the body starts a child process (see ``_Signals``)."""
    _SIGNALS.spawning += 1
    try:
        yield
    finally:
        _SIGNALS.spawning -= 1
        if not _SIGNALS.spawning and _SIGNALS.held:
            _SIGNALS.held = False
            raise Interrupted(signal.Signals(_SIGNALS.received[0]).name)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- setup: keys, signing key, partners -----------------------------------------------------

@dataclass
class DemoConfig:
    """Files the services read, under ``<out>/config``, and the demo partner's credentials."""

    root: Path
    client_id: str = DEMO_PARTNER
    client_secret: str = ""

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def partners_file(self) -> Path:
        return self.root / "partners.yaml"

    @property
    def signing_key(self) -> Path:
        return self.keys / "signing-key.pem"


def setup_config(root: Path) -> DemoConfig:
    """Write (or keep) the key files and a partners file with one demo bank; idempotent."""
    from services.devtools import keys_cli

    config = DemoConfig(root)
    keys_cli.main(["generate", str(config.keys)])
    if not config.signing_key.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(config.signing_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    secret_file = config.root / "demo-bank.secret"
    if secret_file.exists() and config.partners_file.exists():
        config.client_secret = secret_file.read_text().strip()
        return config
    config.client_secret = secrets.token_urlsafe(24)
    from services.api.partners import OPT_IN_SCOPES, TYPE_SCOPES, hash_secret

    partners = {"partners": [{
        "id": DEMO_PARTNER, "name": "Demo Bank (local demo)", "type": "bank",
        "client_secret_hash": hash_secret(config.client_secret),
        # a bank's default scopes and the CAMARA checks of the guide's payment-time check
        "scopes": sorted(TYPE_SCOPES["bank"] | OPT_IN_SCOPES["bank"]),
        "purposes": ["dpv:FraudPreventionAndDetection"], "disclosure": "reasons",
        # A bank sees alerts about the numbers on its own watch-list (its customers), not all.
        "alerts": "watchlist", "alert_min_level": "medium",
        "rate": {"per_second": 50, "burst": 100}, "quota_per_day": 100000, "lookup_budget_per_hour": 1000,
    }]}
    config.partners_file.write_text("# Generated by fraudradar demo: one partner, fresh secret.\n"
                                    + yaml.safe_dump(partners, sort_keys=False))
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(config.client_secret + "\n")
    return config


# --- services as subprocesses ---------------------------------------------------------------

@dataclass
class Service:
    """One ``fraudradar <command>`` child process with its HTTP port and log file."""

    name: str
    module: str
    args: list[str]
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log, _spawning():
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *self.args], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                return False
            with suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return True
            time.sleep(0.3)
        return False

    def metrics(self) -> dict[str, float]:
        """Sum of every sample per metric name (labels folded), from /metrics."""
        if not self.running:
            return {}
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
        return totals

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (finish, flush, commit), SIGKILL after ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Progress:
    """Counters scraped from the services once per tick."""

    events: float = 0.0
    views: float = 0.0
    scored: float = 0.0
    alerts: float = 0.0
    lag: float = 0.0
    dlq: float = 0.0
    at: float = field(default_factory=time.monotonic)


def scrape(services: dict[str, Service]) -> Progress:
    ingest = services["ingest"].metrics()
    scorer = services["scorer"].metrics()
    lag = sum(m.get("fraudradar_consumer_lag", 0.0) for m in (ingest, scorer))
    return Progress(
        events=ingest.get("fraudradar_ingest_events_total", 0.0),
        views=ingest.get("fraudradar_ingest_views_total", 0.0),
        scored=scorer.get("fraudradar_scorer_views_total", 0.0),
        alerts=scorer.get("fraudradar_alerts_total", 0.0),
        lag=lag,
        dlq=ingest.get("fraudradar_dlq_total", 0.0),
    )


# --- the run ----------------------------------------------------------------------------------

@dataclass
class Run:
    args: argparse.Namespace
    out: Path
    bootstrap: str
    prefix: str
    config: DemoConfig
    services: dict[str, Service] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("FRAUDRADAR_PSEUDONYM_KEY", "FRAUDRADAR_DISCLOSURE_KEY"):
            env.pop(name, None)
        env.update({
            "FRAUDRADAR_BOOTSTRAP": self.bootstrap,
            "FRAUDRADAR_TOPIC_PREFIX": self.prefix,
            "FRAUDRADAR_PSEUDONYM_KEY_FILE": str(self.config.keys / "pseudonym.key"),
            "FRAUDRADAR_DISCLOSURE_KEY_FILE": str(self.config.keys / "disclosure.key"),
            "FRAUDRADAR_LOG_LEVEL": "WARNING",
            # matplotlib (the backtest's plots) keeps its font cache in the project's cache.
            "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR") or str(cache_dir() / "matplotlib"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])),
        })
        env.update(extra)
        return env

    def start_services(self) -> None:
        logs = self.out / "logs"
        ingest_port, scorer_port, api_port = free_port(), free_port(), free_port()
        self.services = {
            "ingest": Service("ingest", "services.ingest.service", ["ingest"], ingest_port,
                              self.env(FRAUDRADAR_HTTP_PORT=str(ingest_port)), logs / "ingest.log"),
            "scorer": Service("scorer", "services.scorer.service", ["score"], scorer_port,
                              self.env(FRAUDRADAR_HTTP_PORT=str(scorer_port), FRAUDRADAR_INSTANCE_ID="demo-scorer-0",
                                       FRAUDRADAR_DISCLOSURE_KEY_FILE=""), logs / "scorer.log"),
            "api": Service("api", "services.api.cli", ["api", "--host", "127.0.0.1", "--port", str(api_port)],
                           api_port, self.env(
                               FRAUDRADAR_PARTNERS_FILE=str(self.config.partners_file),
                               FRAUDRADAR_SIGNING_KEY_FILE=str(self.config.signing_key),
                               FRAUDRADAR_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
                               FRAUDRADAR_HTTP_PORT=str(api_port)), logs / "api.log"),
        }
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            if service.wait_ready(90):
                _say(f"  {service.name:<7} ready on http://127.0.0.1:{service.port} (log {service.log_path})")
            else:
                _say(f"  {service.name:<7} did NOT become ready; last log lines:\n{_tail(service.log_path)}")

    def stop_services(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "    (no log)"


@dataclass
class Broker:
    bootstrap: str
    started_here: bool


@contextmanager
def _broker(args: argparse.Namespace) -> Iterator[Broker]:
    """The broker to use: --bootstrap, else the running `fraudradar kafka up` one, else a fresh one
    on empty data that stops when the demo ends (also on SIGTERM/SIGINT)."""
    if args.bootstrap:
        yield Broker(args.bootstrap, started_here=False)
        return
    workdir = cache_dir() / "broker"
    running = LocalKafka.from_state(workdir)
    if running is not None:
        _say(f"  reusing the local Kafka on {running.bootstrap} (started by `fraudradar kafka up`)")
        _delete_old_demo_topics(running.bootstrap)
        yield Broker(running.bootstrap, started_here=False)
        return
    freed = purge_broker_data(workdir)
    if freed:
        _say(f"  deleted the data of an earlier demo's broker ({freed / 1e6:.0f} MB)")
    if (libs_dir() / ".complete").exists():
        _say("starting the local Kafka broker...")
    else:
        _say("starting the local Kafka broker (its jars are not in the cache yet: Maven resolves them "
             "first, a few minutes)...")
    kafka = LocalKafka(workdir=workdir)
    try:
        with _spawning():  # a signal during the start stops the broker once it is up (at most start_timeout_s)
            kafka.start()
        _say(f"  Kafka up on {kafka.bootstrap} in {kafka.startup_s:.1f}s")
        yield Broker(kafka.bootstrap, started_here=True)
    finally:
        kafka.stop()


def _delete_old_demo_topics(bootstrap: str) -> None:
    """Topics of earlier demo runs (prefix ``demo-``) on a broker that outlives the demo."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fraudradar-demo")
    try:
        old = [t for t in admin.list_topics() if t.startswith("demo-")]
        if old:
            admin.delete_topics(old)
            _say(f"  deleted {len(old)} topics of earlier demo runs")
    finally:
        admin.close()


def simulate(run: Run) -> tuple[Path, Path] | None:
    """Generate the traffic once to files (for the backtest); return (events, truth) paths."""
    sim_dir = run.out / "traffic"
    cmd = [sys.executable, "-m", "services.cli", "simulate", "--subscribers", str(run.args.subscribers),
           "--duration", run.args.sim_duration, "--seed", str(run.args.seed), "--out", str(sim_dir), "--quiet"]
    proc = subprocess.run(cmd, env=run.env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        _say(f"simulate failed:\n{proc.stderr[-2000:]}")
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
    span_s = _duration_s(run.args.sim_duration)
    _say(f"streaming {size} simulated events at ~{rate:.0f}/s for ~{seconds / 60:.1f} min: "
         f"{run.args.sim_duration} of traffic, about {max(1.0, span_s / seconds):.0f}x faster than real time "
         "(scenarios: all)")
    producer: subprocess.Popen[bytes] | None = None
    try:
        with (run.out / "logs" / "simulate.log").open("ab") as log, _spawning():
            producer = subprocess.Popen(cmd, env=run.env(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        _watch(run, producer, seconds)
    finally:
        if producer is not None and producer.poll() is None:
            producer.send_signal(signal.SIGTERM)
            try:
                producer.wait(30)
            except subprocess.TimeoutExpired:
                producer.kill()
                producer.wait(10)
    if producer.returncode != 0:
        _say(f"simulate --to-kafka exited with {producer.returncode}:\n{_tail(run.out / 'logs' / 'simulate.log')}")
    truth = live_dir / "truth.jsonl"
    return (truth if truth.exists() else None), size


def _watch(run: Run, producer: subprocess.Popen[bytes], seconds: float) -> None:
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


def read_alerts(run: Run) -> list[Any]:
    """Every alert on the demo's alerts topic (decoded wire records)."""
    from kafka import KafkaConsumer, TopicPartition

    from services.common import topics
    from services.common.records import decode_alert

    topic = f"{run.prefix}{topics.ALERTS}"
    consumer = KafkaConsumer(bootstrap_servers=run.bootstrap.split(","), enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=3000, isolation_level="read_committed")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        return [decode_alert(message.value) for message in consumer]
    finally:
        consumer.close()


def summarise(run: Run, truth_path: Path | None, streamed: int) -> list[Any]:
    """Print injected fraud vs flagged with time to detect; return the alerts."""
    alerts = read_alerts(run)
    by_level: dict[str, int] = {}
    for alert in alerts:
        by_level[alert.level] = by_level.get(alert.level, 0) + 1
    levels = ", ".join(f"{n} {level}" for level, n in sorted(by_level.items())) or "none"
    _say(f"\n{len(alerts)} alerts raised ({levels})")
    if truth_path is None:
        return alerts
    from services.devtools.simulator.backtest import load_truth
    from services.devtools.simulator.quality import (
        AlertPoint,
        evaluate,
    )

    # The truth file names plaintext numbers and IMEIs; the demo holds the pseudonym key, so
    # it can map them onto the pseudonyms the alerts carry (a real deployment never does this).
    truth = load_truth(truth_path, _demo_pseudonymizer(run))
    points = [AlertPoint(a.entity_type, a.entity, a.level, _ms(a.raised_at), a.campaign_id) for a in alerts]
    max_scores: dict[tuple[str, str], float] = {}
    for a in alerts:
        key = (a.entity_type, a.entity)
        max_scores[key] = max(max_scores.get(key, 0.0), float(a.score))
    seconds = max(1.0, run.args.minutes * 60)
    evaluation = evaluate(truth, points, max_scores, normal_numbers=run.args.subscribers,
                          duration_days=seconds / 86400, events=streamed, events_per_s=streamed / seconds,
                          model_version=_model_version(alerts), min_level=run.args.min_level)
    speedup = max(1.0, _duration_s(run.args.sim_duration) / seconds)
    print_table(evaluation.metrics, run.args.min_level,
                f"live stream: injected fraud vs flagged; times to detect in stream time, which ran "
                f"{speedup:.0f}x faster than the simulated clock")
    return alerts


def _model_version(alerts: list[Any]) -> str:
    versions = sorted({a.model_version for a in alerts})
    return ",".join(versions) or "-"


def _demo_pseudonymizer(run: Run) -> Any:
    from services.common.pseudonym import Pseudonymizer, parse_key

    return Pseudonymizer(parse_key((run.config.keys / "pseudonym.key").read_text(), "pseudonym key"))


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def print_table(metrics: dict[str, Any], min_level: str, title: str) -> None:
    """Injected vs flagged per scenario (the backtest's metrics document shape)."""
    rows = [("scenario", "injected", "flagged", "recall", "time to detect (median)", "p90")]
    for name, s in metrics.get("scenarios", {}).items():
        ttd, p90 = s.get("ttd_median_s"), s.get("ttd_p90_s")
        rows.append((name, str(s["entities"]), str(s["detected"]), f"{s['recall']:.0%}",
                     "-" if ttd is None else f"{ttd:.0f} s", "-" if p90 is None else f"{p90:.0f} s"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    _say(f"\n{title} (entities; an alert at level {min_level} or above counts)")
    for i, row in enumerate(rows):
        _say("  " + "  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            _say("  " + "  ".join("-" * w for w in widths))
    overall = metrics.get("overall", {})
    if overall:
        _say(f"  overall: precision {overall['precision']:.0%}, recall {overall['recall']:.0%}")


@dataclass
class TourNumbers:
    """The numbers the tour looked up, for bank.env: one flagged, one without a flag."""

    flagged: str | None = None
    clean: str | None = None


def api_tour(run: Run, alerts: list[Any]) -> TourNumbers:
    """Token → lookup of a flagged and a clean number → watch the flagged one → the bank's alert
    feed, against the running API. The numbers are shown in full: the demo's numbers are
    simulated, and the point is that the reader can repeat the lookups (docs/bank-guide.md)."""
    numbers = TourNumbers()
    api = run.services.get("api")
    if api is None or not api.running:
        _say("\napi is not running (see its log): skipping the API tour")
        return numbers
    base = f"http://127.0.0.1:{api.port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        token_resp = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                 auth=(run.config.client_id, run.config.client_secret))
        _say(f"\nPOST {base}/oauth2/token (client {run.config.client_id}) -> {token_resp.status_code}")
        if token_resp.status_code != 200:
            _say(f"  {token_resp.text[:300]}")
            return numbers
        granted = token_resp.json()
        _say(f"  scope: {granted.get('scope')}  expires_in: {granted.get('expires_in')}s")
        headers = {"Authorization": f"Bearer {granted['access_token']}", "x-correlator": "demo-1"}
        number = _flagged_number(run, alerts)
        if number is None:
            _say("no flagged number found in the truth file: skipping the lookup")
        else:
            resp = client.post("/v1/risk/numbers:lookup", json={"phoneNumber": number}, headers=headers)
            _say(f"POST /v1/risk/numbers:lookup {{\"phoneNumber\": \"{number}\"}} -> {resp.status_code}")
            _say("  " + json.dumps(resp.json(), indent=2).replace("\n", "\n  ")[:1500])
            if resp.status_code == 200 and resp.json().get("signal"):
                numbers.flagged = number
            # A bank's feed carries alerts about the numbers it watches: put this one on the list.
            watch = client.post("/v1/watchlist/entries", json={"phoneNumber": number, "reference": "demo-customer-1"},
                                headers=headers)
            _say(f"POST /v1/watchlist/entries {{\"phoneNumber\": \"{number}\"}} -> {watch.status_code}")
        for candidate in _clean_candidates(run, alerts):
            resp = client.post("/v1/risk/numbers:lookup", json={"phoneNumber": candidate}, headers=headers)
            if resp.status_code == 200 and resp.json().get("signal") is False:
                _say(f"POST /v1/risk/numbers:lookup {{\"phoneNumber\": \"{candidate}\"}} -> {resp.status_code} "
                     f"{json.dumps(resp.json())}   (a subscriber without a flag)")
                numbers.clean = candidate
                break
        feed = client.get("/v1/alerts", params={"limit": 3}, headers=headers)
        _say(f"GET /v1/alerts?limit=3 (alerts about watched numbers) -> {feed.status_code}")
        _say("  " + json.dumps(feed.json(), indent=2).replace("\n", "\n  ")[:2000])
    return numbers


def _flagged_number(run: Run, alerts: list[Any]) -> str | None:
    """A plaintext number behind a flagged pseudonym: the demo knows the truth file and the key."""
    truth_path = run.out / "live" / "truth.jsonl"
    if not truth_path.exists():
        return None
    flagged = {a.entity for a in alerts if a.entity_type == "number"}
    pseudonymizer = _demo_pseudonymizer(run)
    from services.common.normalise import IdentifierError, normalise_number

    for line in truth_path.read_text().splitlines():
        row = json.loads(line)
        if row["entity_type"] != "number" or row.get("label") == "negative":
            continue  # a flagged hard negative is a false alarm, not the fraud number to show
        with suppress(IdentifierError):
            normalised = normalise_number(str(row["identifier"]), "NL", allow_alphanumeric=True).value
            if normalised.startswith("+") and pseudonymizer("msisdn", normalised) in flagged:
                return normalised
    return None


def _clean_candidates(run: Run, alerts: list[Any], limit: int = 5) -> Iterator[str]:
    """Numbers of ordinary subscribers: senders in the simulated traffic that are neither in the
    truth file (injected fraud) nor behind any alert. The tour keeps the first the API answers
    ``signal: false`` for."""
    events_path = run.out / "traffic" / "events.jsonl"
    truth_path = run.out / "live" / "truth.jsonl"
    if not events_path.exists():
        return
    from services.common.normalise import IdentifierError, normalise_number

    pseudonymizer = _demo_pseudonymizer(run)
    alerted = {a.entity for a in alerts if a.entity_type == "number"}
    fraud: set[str] = set()
    if truth_path.exists():
        for line in truth_path.read_text().splitlines():
            row = json.loads(line)
            if row["entity_type"] == "number":
                with suppress(IdentifierError):
                    fraud.add(normalise_number(str(row["identifier"]), "NL", allow_alphanumeric=True).value)
    given = 0
    with events_path.open() as events:
        for line in events:
            sender = json.loads(line).get("a_number")
            if not isinstance(sender, str):
                continue
            with suppress(IdentifierError):
                number = normalise_number(sender, "NL").value
                if (number.startswith("+316") and number not in fraud
                        and pseudonymizer("msisdn", number) not in alerted):
                    yield number
                    given += 1
                    if given >= limit:
                        return


def write_bank_env(run: Run, numbers: TourNumbers) -> Path | None:
    """``<out>/config/bank.env``: what docs/bank-guide.md's commands read (mode 0600: a secret)."""
    api = run.services.get("api")
    if api is None:
        return None
    values = {
        "API_URL": f"http://127.0.0.1:{api.port}",
        "CLIENT_ID": run.config.client_id,
        "CLIENT_SECRET": run.config.client_secret,
        "FLAGGED_NUMBER": numbers.flagged or "",
        "CLEAN_NUMBER": numbers.clean or "",
    }
    text = ("# Written by `fraudradar demo`: the demo API and its demo bank, for docs/bank-guide.md.\n"
            "# Valid while that demo's API runs (`fraudradar demo --serve`); every run writes it anew.\n"
            "# FLAGGED_NUMBER is a simulated fraud number the scorer flagged, CLEAN_NUMBER a simulated\n"
            "# subscriber without a flag.\n"
            + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items()))
    path = run.config.root / BANK_ENV
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (what a user would type)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_guide_start(bank_env: Path, numbers: TourNumbers, serving: bool) -> None:
    for name, value in (("FLAGGED_NUMBER", numbers.flagged), ("CLEAN_NUMBER", numbers.clean)):
        if value is None:
            _say(f"\nnote: this run found no number for {name} (see the tour above): it is empty in {bank_env.name}")
    _say("\nthe bank guide (docs/bank-guide.md) runs against this demo; its first commands:\n")
    _say(f"source {shlex.quote(_shown_path(bank_env))}")
    for command in GUIDE_FIRST_COMMANDS:
        _say(command)
    if not serving:
        _say("(the API stops with this run: `fraudradar demo --serve` keeps it up for the guide)")


def backtest(run: Run, files: tuple[Path, Path] | None) -> Path | None:
    if files is None:
        return None
    report_dir = run.out / "report"
    cmd = [sys.executable, "-m", "services.cli", "backtest", "--events", str(files[0]), "--truth", str(files[1]),
           "--out", str(report_dir), "--min-level", run.args.min_level, "--quiet"]
    _say("\nbacktest: replaying the same traffic through ingest+scorer (no Kafka) for the report...")
    proc = subprocess.run(cmd, env=run.env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        _say(f"backtest failed:\n{proc.stderr[-2000:]}")
        return None
    metrics_path = report_dir / "metrics.json"
    if metrics_path.exists():
        print_table(json.loads(metrics_path.read_text()), run.args.min_level,
                    "backtest of the same traffic at its true event times (times to detect in simulated time)")
    report = report_dir / "report.html"
    return report if report.exists() else None


def _duration_s(text: str) -> float:
    from services.devtools.simulator.timeline import parse_duration

    return parse_duration(text) / 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to stream traffic (default 3)")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="work directory (default ./demo-out)")
    parser.add_argument("--subscribers", type=int, default=20000, help="simulated subscribers (default 20000)")
    parser.add_argument("--sim-duration", default="3h", help="simulated traffic span (default 3h)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the keyed topics (default 3)")
    parser.add_argument("--min-level", default="high", choices=["low", "medium", "high", "critical"],
                        help="alert level that counts as flagged in the table (default high)")
    parser.add_argument("--bootstrap", help="use this Kafka instead of the local broker")
    parser.add_argument("--serve", action="store_true", help="keep the services up after the summary until Ctrl-C")
    parser.add_argument("--setup-only", action="store_true", help="write keys and partners into --out and exit")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    if args.setup_only:
        config = setup_config(out)
        _say(f"keys and partners in {out}; demo partner: client_id {config.client_id}, "
             f"client_secret {config.client_secret}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    started = time.monotonic()
    _say(f"fraudradar demo: work directory {out}")
    _SIGNALS.received.clear()
    _SIGNALS.spawning, _SIGNALS.held = 0, False
    received = _SIGNALS.received
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _broker(args) as broker:
            code = _run(args, out, broker, started)
    except Interrupted:
        code = 128 + received[0] if received else 130
    except (KafkaToolMissing, KafkaStartError) as exc:
        _say(f"fraudradar demo: {exc}")
        code = 3
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        _say(f"stopped on {signal.Signals(received[0]).name}: every process the demo started has ended")
    return code


def _interrupt(signum: int, _frame: Any) -> None:
    """The handler of SIGTERM and SIGINT: the first raises ``Interrupted`` in the main thread (held
    back while a child is being started), whose ``finally`` blocks stop the services, the
    producer and the broker the demo started; later ones are noted and ignored, so a second
    Ctrl-C does not cut that cleanup short (it is bounded: SIGKILL after 30 s per service)."""
    _SIGNALS.received.append(signum)
    if len(_SIGNALS.received) > 1:
        return
    _say(f"\n{signal.Signals(signum).name}: stopping every process the demo started...")
    if _SIGNALS.spawning:
        _SIGNALS.held = True
        return
    raise Interrupted(signal.Signals(signum).name)


def _run(args: argparse.Namespace, out: Path, broker: Broker, started: float) -> int:
    from services.common.topics import ensure_topics

    prefix = "demo-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "."
    run = Run(args, out, broker.bootstrap, prefix, setup_config(out / "config"))
    ensure_topics(broker.bootstrap, prefix, partitions=args.partitions)
    _say(f"  topics created under prefix {prefix!r} ({args.partitions} partitions)")
    report: Path | None = None
    try:
        run.start_services()
        files = simulate(run)
        truth, streamed = None, 0
        if files is not None:
            truth, streamed = stream(run, files[0])
        alerts = summarise(run, truth, streamed)
        numbers = api_tour(run, alerts)
        report = backtest(run, files)
        bank_env = write_bank_env(run, numbers)
        _say("")
        if report is not None:
            _say(f"report: {report}")
        _say(f"logs: {out / 'logs'}   config and keys: {out / 'config'}")
        if bank_env is not None:
            print_guide_start(bank_env, numbers, serving=args.serve)
        if args.serve:
            _say("\nservices keep running (Ctrl-C or SIGTERM stops them"
                 + (" and the Kafka broker)" if broker.started_here else ")") + ":")
            for s in run.services.values():
                if s.running:
                    _say(f"  {s.name:<7} http://127.0.0.1:{s.port}")
            while any(s.running for s in run.services.values()):
                time.sleep(1)
            _say("\nevery service has exited (see the logs)")
    finally:
        run.stop_services()
    if broker.started_here:
        after = "the demo's Kafka broker stops now too"
    elif args.bootstrap:
        after = f"Kafka on {broker.bootstrap} is not the demo's and keeps running"
    else:
        after = f"Kafka keeps running on {broker.bootstrap}: stop it with `fraudradar kafka down`"
    _say(f"done in {(time.monotonic() - started) / 60:.1f} min. The services are stopped; {after}.")
    return 0
