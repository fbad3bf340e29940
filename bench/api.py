"""Benchmark: number lookups on the running partner API vs a bare FastAPI route.

Both run under the same server settings (uvicorn, one process, loopback) in the same run:

1. closed loop, C concurrent clients, in ``--rounds`` interleaved rounds (bare, api, bare,
   api, ...) of T seconds each, so that load from elsewhere on the machine hits both alike:
   ``throughput_ratio`` = median over rounds of API lookups/s / bare-route requests/s
   (target >= 0.6). ``cpu_ratio`` = the same from the servers' CPU time per request (read from
   /proc), which contention from other processes disturbs much less than wall-clock rates;
2. the same against numbers the API has never seen (``throughput_ratio_cold_numbers``: each
   lookup pays libphonenumber and the HMAC once), after the steady-state rounds where the
   working set of 5000 numbers is in the API's caches (one warm-up pass looks each up once);
3. open loop at a fixed rate (default 1000 requests/s) for T seconds against the API:
   ``p50_ms``/``p99_ms`` (target p99 <= 10 ms), measured at the client; then the same for
   ``POST /v1/call-state:check`` (``call_state_check_p*_ms``, target p99 <= 10 ms).

The API runs against a real broker (a local one is started unless ``--bootstrap`` is given)
with 2000 flagged numbers materialised; lookups spread over 5000 distinct numbers.

    python bench/api.py --json bench/results/api.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import http_load as load  # noqa: E402

SECRET = "bench-bank-secret-0123456789"


class BareBody(BaseModel):
    phoneNumber: str


class BareAnswer(BaseModel):
    signal: bool
    level: str


def bare_app() -> Any:
    """The baseline: one POST route with a pydantic body and model, nothing else."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/risk/numbers:lookup", response_model=BareAnswer)
    async def lookup(body: BareBody) -> dict[str, Any]:
        return {"signal": False, "level": "none"}

    return app


def _serve(kind: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    code = (
        f"import sys, uvicorn; sys.path.insert(0, {str(ROOT)!r}); import bench.api as b; "
        "from services.api.app import create_app; "
        f"app = create_app() if {kind!r} == 'api' else b.bare_app(); "
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning', access_log=False)"
    )
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)


def _preload(bootstrap: str, prefix: str, numbers: list[str]) -> None:
    from kafka import KafkaProducer

    from services.common.config import CommonSettings
    from services.common.records import Reason, Risk, encode
    from services.common.topics import RISK

    settings = CommonSettings(bootstrap=bootstrap, topic_prefix=prefix)
    pseudonymizer = settings.pseudonymizer()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    now = datetime.now(UTC)
    stamp = lambda d: d.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
    for phone in numbers:
        entity = pseudonymizer("msisdn", phone)
        risk = Risk(
            entity_type="number",
            entity=entity,
            score=77,
            level="high",
            reasons=[Reason("SMS_BURST", "sms_5m", 90, "5m", "p99.9", "90 SMS in 5m")],
            updated_at=stamp(now),
            expires_at=stamp(now + timedelta(hours=6)),
            model_version="bench",
        )
        producer.send(settings.topic(RISK), key=f"number:{entity}".encode(), value=encode(risk))
    producer.flush(30)
    producer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--bootstrap", default=os.environ.get("FRAUDRADAR_TEST_BOOTSTRAP"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved bare/api closed-loop rounds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument(
        "--plot", type=Path, default=None, help="latency histogram PNG (default next to --json)"
    )
    args = parser.parse_args(argv)

    from services.api.partners import hash_secret
    from services.api.tokens import generate_signing_key_pem
    from services.common.pseudonym import generate_key_text
    from services.common.topics import ensure_topics
    from services.devtools.kafka_local import LocalKafka

    tmp = Path(tempfile.mkdtemp(prefix="fraudradar-bench-api-"))
    broker = None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bootstrap = args.bootstrap
        if not bootstrap:
            broker = LocalKafka(workdir=tmp / "kafka").start()
            bootstrap = broker.bootstrap
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        ensure_topics(bootstrap, prefix, partitions=3)
        (tmp / "signing.pem").write_bytes(generate_signing_key_pem())
        (tmp / "partners.yaml").write_text(
            yaml.safe_dump(
                {
                    "partners": [
                        {
                            "id": "bench-bank",
                            "type": "bank",
                            "client_secret_hash": hash_secret(SECRET),
                            "disclosure": "reasons",
                            "rate": {"per_second": 1_000_000, "burst": 1_000_000},
                            "quota_per_day": 100_000_000,
                            "lookup_budget_per_hour": 10_000_000,
                        }
                    ]
                }
            )
        )
        flagged = [f"+316{20000000 + i}" for i in range(2000)]
        numbers = [f"+316{20000000 + i}" for i in range(5000)]
        print("preloading risk records...", file=sys.stderr)
        os.environ.setdefault("FRAUDRADAR_PSEUDONYM_KEY", generate_key_text("pbench"))
        os.environ.setdefault("FRAUDRADAR_DISCLOSURE_KEY", generate_key_text("dbench"))
        _preload(bootstrap, prefix, flagged)
        env = {
            **os.environ,
            "FRAUDRADAR_BOOTSTRAP": bootstrap,
            "FRAUDRADAR_TOPIC_PREFIX": prefix,
            "FRAUDRADAR_PARTNERS_FILE": str(tmp / "partners.yaml"),
            "FRAUDRADAR_SIGNING_KEY_FILE": str(tmp / "signing.pem"),
            "FRAUDRADAR_LOG_LEVEL": "WARNING",
            "FRAUDRADAR_HTTP_PORT": "0",  # the API's operations port: any free one
            "PYTHONPATH": str(ROOT),
        }
        api_port, bare_port = load.free_port(), load.free_port()
        procs.append(_serve("api", api_port, env))
        procs.append(_serve("bare", bare_port, env))
        api, bare = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
        load.wait_ready(api + "/readyz")
        load.wait_ready(bare + "/healthz")
        token = httpx.post(
            api + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("bench-bank", SECRET)
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        check = httpx.post(
            api + "/v1/risk/numbers:lookup", json={"phoneNumber": flagged[0]}, headers=headers
        ).json()
        assert check["level"] == "high", check

        steps = tqdm(total=2 * args.rounds + 5, desc="bench api", file=sys.stderr)
        api_proc, bare_proc = procs
        api_requests = load.request_bytes("127.0.0.1", api_port, token, numbers)
        bare_requests = load.request_bytes("127.0.0.1", bare_port, token, numbers)
        cold_requests = load.request_bytes(
            "127.0.0.1", api_port, token, [f"+316{30000000 + i}" for i in range(40000)]
        )
        asyncio.run(load.one_pass(api_port, api_requests, args.concurrency))  # warm-up
        asyncio.run(load.closed_loop(bare_port, bare_requests, 1.0, args.concurrency))
        steps.update(1)
        rounds: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            bare = load.measure(bare_proc, bare_port, bare_requests, args.seconds, args.concurrency)
            steps.update(1)
            api_run = load.measure(api_proc, api_port, api_requests, args.seconds, args.concurrency)
            steps.update(1)
            rounds.append(
                {
                    "api_rps": api_run["rps"],
                    "bare_rps": bare["rps"],
                    "ratio": api_run["rps"] / bare["rps"],
                    "api_cpu_ms": api_run["cpu_ms_per_request"],
                    "bare_cpu_ms": bare["cpu_ms_per_request"],
                    "cpu_ratio": bare["cpu_ms_per_request"] / api_run["cpu_ms_per_request"],
                    "errors": api_run["errors"],
                }
            )
        cold = load.measure(api_proc, api_port, cold_requests, args.seconds, args.concurrency)
        bare_after = load.measure(bare_proc, bare_port, bare_requests, args.seconds, args.concurrency)
        steps.update(1)
        bare_open = asyncio.run(load.open_loop(bare_port, bare_requests, args.seconds, args.rate))
        steps.update(1)
        api_open = asyncio.run(load.open_loop(api_port, api_requests, args.seconds, args.rate))
        steps.update(1)
        # the payment-time call-state check (no calls in progress here: bench/call_state.py
        # measures it with calls, and the event -> answer delay)
        check_requests = load.request_bytes("127.0.0.1", api_port, token, numbers, "/v1/call-state:check")
        check_open = asyncio.run(load.open_loop(api_port, check_requests, args.seconds, args.rate))
        steps.update(1)
        steps.close()
        report = {
            "benchmark": "api number lookups vs bare FastAPI route (same uvicorn settings, loopback)",
            "throughput_ratio": statistics.median(r["ratio"] for r in rounds),
            "cpu_ratio": statistics.median(r["cpu_ratio"] for r in rounds),
            "throughput_ratio_cold_numbers": cold["rps"] / bare_after["rps"],
            "cpu_ratio_cold_numbers": bare_after["cpu_ms_per_request"] / cold["cpu_ms_per_request"],
            "api_rps": statistics.median(r["api_rps"] for r in rounds),
            "bare_rps": statistics.median(r["bare_rps"] for r in rounds),
            "api_cpu_ms_per_request": statistics.median(r["api_cpu_ms"] for r in rounds),
            "bare_cpu_ms_per_request": statistics.median(r["bare_cpu_ms"] for r in rounds),
            "rounds": rounds,
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "p50_ms": api_open["p50_ms"],
            "p90_ms": api_open["p90_ms"],
            "p99_ms": api_open["p99_ms"],
            "max_ms": api_open["max_ms"],
            "requested_rps": args.rate,
            "achieved_rps": api_open["achieved_rps"],
            "bare_p50_ms": bare_open["p50_ms"],
            "bare_p99_ms": bare_open["p99_ms"],
            "call_state_check_p50_ms": check_open["p50_ms"],
            "call_state_check_p99_ms": check_open["p99_ms"],
            "errors": sum(r["errors"] for r in rounds) + cold["errors"] + api_open["errors"] + check_open["errors"],
            "targets": {"throughput_ratio": ">= 0.6", "p99_ms": "<= 10 at 1000 requests/s"},
            "machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "loadavg_after": os.getloadavg(),
            },
            "note": "client and servers share the machine's cores; latency is measured at the client",
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        _plot(
            args.plot or args.json.with_suffix(".png"),
            api_open["latencies"],
            bare_open["latencies"],
            args.rate,
        )
        print(json.dumps({k: v for k, v in report.items() if k not in ("machine", "rounds")}, indent=2))
        return 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)     # the broker's data, the partners file, the key


def _plot(path: Path, api_ms: list[float], bare_ms: list[float], rate: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    top = max(api_ms[int(len(api_ms) * 0.999)] if api_ms else 1, 1)
    bins = [i * top / 80 for i in range(81)]
    ax.hist(bare_ms, bins=bins, alpha=0.6, label="bare FastAPI route")
    ax.hist(api_ms, bins=bins, alpha=0.6, label="partner API lookup")
    ax.set_xlabel("latency at the client (ms)")
    ax.set_ylabel("requests")
    ax.set_title(f"lookup latency at {rate:.0f} requests/s (loopback)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
