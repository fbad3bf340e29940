"""The HTTP load machinery of the API benches (``bench/api.py``, ``bench/call_state.py``): a
cheap keep-alive client, closed- and open-loop runs with client-side latencies, and the server's
CPU time per request read from /proc."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Conn:
    """A minimal HTTP/1.1 keep-alive client connection (the load generator must be cheaper
    than the servers it measures; httpx costs about a millisecond of CPU per request)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def request_bytes(
    host: str, port: int, token: str, numbers: list[str], path: str = "/v1/risk/numbers:lookup"
) -> list[bytes]:
    out = []
    for phone in numbers:
        body = json.dumps({"phoneNumber": phone}).encode()
        out.append(
            f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
            f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
    return out


def measure(
    proc: subprocess.Popen[bytes], port: int, requests: list[bytes], seconds: float, concurrency: int
) -> dict[str, float]:
    """A closed-loop run plus the server's CPU time per answered request."""
    cpu = _cpu_seconds(proc.pid)
    result = asyncio.run(closed_loop(port, requests, seconds, concurrency))
    result["cpu_ms_per_request"] = (_cpu_seconds(proc.pid) - cpu) * 1000 / max(1, result["done"])
    return result


async def one_pass(port: int, requests: list[bytes], concurrency: int) -> None:
    """Send every request once (the warm-up: every number of the working set looked up once)."""
    conns = [await _Conn.open("127.0.0.1", port) for _ in range(concurrency)]

    async def worker(k: int, conn: _Conn) -> None:
        for i in range(k, len(requests), concurrency):
            await conn.post(requests[i])

    await asyncio.gather(*(worker(k, c) for k, c in enumerate(conns)))
    for c in conns:
        c.close()


async def closed_loop(
    port: int, requests: list[bytes], seconds: float, concurrency: int
) -> dict[str, float]:
    done = errors = 0
    stop = time.perf_counter() + seconds
    conns = [await _Conn.open("127.0.0.1", port) for _ in range(concurrency)]

    async def worker(k: int, conn: _Conn) -> None:
        nonlocal done, errors
        i = k
        while time.perf_counter() < stop:
            status = await conn.post(requests[i % len(requests)])
            i += concurrency
            if status == 200:
                done += 1
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(k, c) for k, c in enumerate(conns)))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return {"rps": done / elapsed, "errors": errors, "done": done}


async def open_loop(
    port: int, requests: list[bytes], seconds: float, rate: float, connections: int = 64
) -> dict[str, Any]:
    """Requests are due at a fixed rate; latency counts from the due time (no coordinated
    omission: if the server falls behind, the queueing shows up in the latency)."""
    latencies: list[float] = []
    errors = 0
    total = int(seconds * rate)
    start = time.perf_counter() + 0.2
    queue: asyncio.Queue[int] = asyncio.Queue()
    conns = [await _Conn.open("127.0.0.1", port) for _ in range(connections)]

    async def feeder() -> None:
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(i)
        for _ in conns:
            queue.put_nowait(-1)

    async def worker(conn: _Conn) -> None:
        nonlocal errors
        while True:
            i = await queue.get()
            if i < 0:
                return
            status = await conn.post(requests[i % len(requests)])
            if status == 200:
                latencies.append((time.perf_counter() - (start + i / rate)) * 1000)
            else:
                errors += 1

    await asyncio.gather(feeder(), *(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

    return {
        "requested_rps": rate,
        "achieved_rps": len(latencies) / elapsed,
        "errors": errors,
        "p50_ms": q(0.50),
        "p90_ms": q(0.90),
        "p99_ms": q(0.99),
        "max_ms": latencies[-1] if latencies else None,
        "latencies": latencies,
    }
