"""Ingest, scorer and API as ``fraudradar <command>`` child processes, and their counters."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.devtools.demo.config import DemoConfig
from services.devtools.demo.console import say, tail
from services.devtools.demo.signals import spawning
from services.devtools.kafka_local import cache_dir, free_port

# The checkout's root: the children run ``python -m services.cli`` with it on PYTHONPATH.
ROOT = Path(__file__).resolve().parents[3]


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
        with self.log_path.open("ab") as log, spawning():
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


@dataclass
class Run:
    """One demo run: its arguments, work directory, broker, topic prefix, config and services."""

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
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        })
        env.update(extra)
        return env

    def start_services(self) -> None:
        logs = self.out / "logs"
        ingest_port, scorer_port, api_port = free_port(), free_port(), free_port()
        self.services = {
            "ingest": Service("ingest", "services.ingest.service", ["ingest"], ingest_port,
                              self.env(FRAUDRADAR_HTTP_PORT=str(ingest_port),
                                       FRAUDRADAR_PROTECTED_NUMBERS_FILE=str(self.config.protected_numbers)),
                              logs / "ingest.log"),
            "scorer": Service("scorer", "services.scorer.service", ["score"], scorer_port,
                              self.env(FRAUDRADAR_HTTP_PORT=str(scorer_port), FRAUDRADAR_INSTANCE_ID="demo-scorer-0",
                                       FRAUDRADAR_DISCLOSURE_KEY_FILE=""), logs / "scorer.log"),
            "api": Service("api", "services.api.cli", ["api", "--host", "127.0.0.1", "--port", str(api_port)],
                           api_port, self.env(
                               FRAUDRADAR_PARTNERS_FILE=str(self.config.partners_file),
                               FRAUDRADAR_PROTECTED_NUMBERS_FILE=str(self.config.protected_numbers),
                               FRAUDRADAR_SIGNING_KEY_FILE=str(self.config.signing_key),
                               FRAUDRADAR_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
                               FRAUDRADAR_HTTP_PORT=str(api_port)), logs / "api.log"),
        }
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            if service.wait_ready(90):
                say(f"  {service.name:<7} ready on http://127.0.0.1:{service.port} (log {service.log_path})")
            else:
                say(f"  {service.name:<7} did NOT become ready; last log lines:\n{tail(service.log_path)}")

    def stop_services(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
