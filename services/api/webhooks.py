"""Webhook deliveries: SSRF guard, Standard Webhooks signatures, retries, cursors.

* **Who delivers.** Only replicas started with ``FRAUDRADAR_WEBHOOK_DELIVERY=true`` deliver,
  and of those exactly one per partner: the one whose index equals
  ``hash(partner id) mod FRAUDRADAR_REPLICA_COUNT``. The chart runs them as a small fixed-size
  StatefulSet (ordinal = index, replicas = count); the autoscaled lookup Deployment runs with
  delivery off, so scaling it never changes who delivers. Every replica materialises
  everything, so the owner has all it needs.
* **At least once, deduplicable.** Each webhook works through its events in source order;
  a failed attempt is retried with exponential backoff until it succeeds or
  ``webhook_max_attempts`` is reached (``gave_up``). What is settled is recorded as a delivery
  cursor (next offset per source partition) on ``fraudradar.partner-state``; after a restart or a
  change of owner the events after the cursor are delivered again. The ``webhook-id`` is a hash
  of the webhook and the source record, so a receiver drops repeats by id.
* **SSRF.** A URL must be https, without credentials, and resolve only to public addresses,
  checked when it is registered *and* before each attempt (a malformed URL is 400, a host
  that does not resolve to public addresses only is 403 PERMISSION_DENIED); the attempt then connects to the
  address that was checked (TLS still verifies the host name), so DNS rebinding cannot move it
  to an internal address. Redirects are not followed.
* **Sinks.** A CAMARA subscription's sink (``Sink``, services/api/subscriptions.py) is delivered
  by the same workers: it renders its own body and headers (a CloudEvent with the sink's
  bearer token) and records what is settled in its own partner-state record, not a cursor.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from services.api.exceptions import ApiError, InvalidArgument, PermissionDenied
from services.api.metrics import WEBHOOK_DELIVERIES, WEBHOOK_SECONDS
from services.api.partner_state import DeliveryCursor, Webhook

log = logging.getLogger("fraudradar.api.webhooks")
# httpx logs every request's full URL at INFO; a webhook URL's query string may carry the
# partner's own token, so the HTTP client's request log stays off (delivery is logged here by
# webhook id only, and counted by the metrics).
logging.getLogger("httpx").setLevel(logging.WARNING)
SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
MAX_BACKOFF_S = 300.0


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` value per Standard Webhooks (v1 = HMAC-SHA256, base64)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def owner_of(partner_id: str, replica_count: int) -> int:
    return int.from_bytes(hashlib.sha256(partner_id.encode()).digest()[:8], "big") % replica_count


class UnsafeUrl(InvalidArgument):
    """The URL is not a well-formed webhook target (400; the schema's pattern excludes it)."""


class ForbiddenTarget(PermissionDenied):
    """The URL is well-formed, but its host does not resolve to public addresses only (403).

    A JSON schema cannot say what a host name resolves to, so this is not a 400 of the
    schema: the partner is not permitted to make the API call that address."""


@dataclass(frozen=True)
class UrlPolicy:
    allow_http: bool = False
    allow_private: bool = False

    def check_syntax(self, url: str) -> tuple[str, str, int]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UnsafeUrl("url is not a valid URL.") from exc
        if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not self.allow_http):
            raise UnsafeUrl("url must use https.")
        if parts.username or parts.password:
            raise UnsafeUrl("url must not carry credentials.")
        if not parts.hostname:
            raise UnsafeUrl("url needs a host.")
        if parts.fragment:
            raise UnsafeUrl("url must not have a fragment.")
        return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)

    def address_allowed(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_multicast or ip.is_unspecified:
            return False
        if self.allow_private:
            return True
        return ip.is_global

    async def resolve(self, url: str) -> tuple[str, str, int, str]:
        """Check ``url`` and return ``(scheme, host, port, a checked address)``."""
        scheme, host, port = self.check_syntax(url)
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), 5.0)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise ForbiddenTarget("url host does not resolve to public addresses.") from exc
        addresses = [str(info[4][0]) for info in infos]
        if not addresses or not all(self.address_allowed(a) for a in addresses):
            raise ForbiddenTarget("url must resolve to public addresses only.")
        return scheme, host, port, addresses[0]


@dataclass(frozen=True)
class WebhookEvent:
    source: str  # "topic:partition"
    offset: int
    event_type: str
    data: dict[str, Any]
    occurred_at: str


@dataclass(frozen=True)
class Sink:
    """A delivery target other than a registered webhook (a CAMARA subscription's sink).

    It goes through the same worker as a webhook (queue, retries with backoff, SSRF check
    before each attempt, one owning replica) but renders its own body and headers, and is
    told when each event is settled (``delivered`` False: given up) instead of keeping a
    delivery cursor: its owner records progress in its own partner-state record."""

    target_id: str
    partner: str
    url: str
    render: Callable[[WebhookEvent], tuple[bytes, dict[str, str]] | None]
    settled: Callable[[WebhookEvent, bool], None]


class _Worker:
    def __init__(self, webhook: Webhook, secret: str, positions: dict[str, int], sink: Sink | None = None) -> None:
        self.webhook = webhook
        self.sink = sink
        self.secret = secret
        self.positions = dict(positions)
        self.queue: deque[WebhookEvent] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.dirty = False


class Dispatcher:
    """Owns the delivery workers of this replica's partners."""

    def __init__(
        self,
        *,
        policy: UrlPolicy,
        replica_index: int,
        replica_count: int,
        timeout_s: float,
        max_attempts: int,
        backoff_s: float,
        open_secret: Callable[[Webhook], str],
        save_cursor: Callable[[DeliveryCursor], None],
        queue_max: int = 100_000,
    ) -> None:
        self.policy = policy
        self.replica_index, self.replica_count = replica_index, replica_count
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self._open_secret = open_secret
        self._save_cursor = save_cursor
        self._queue_max = queue_max
        self._workers: dict[str, _Worker] = {}
        self._client = httpx.AsyncClient(
            timeout=timeout_s, follow_redirects=False, headers={"user-agent": "fraudradar-webhooks/1"}
        )
        self._flusher: asyncio.Task[None] | None = None

    def owns(self, partner_id: str) -> bool:
        return owner_of(partner_id, self.replica_count) == self.replica_index

    def sync(self, webhook: Webhook | None, webhook_id: str, cursor: dict[str, int] | None) -> None:
        """Start, keep or stop the worker of one webhook after its registration changed."""
        worker = self._workers.get(webhook_id)
        if webhook is None or not self.owns(webhook.partner):
            if worker is not None:
                if worker.task is not None:
                    worker.task.cancel()
                del self._workers[webhook_id]
            return
        if worker is not None:
            worker.webhook = webhook
            return
        worker = _Worker(webhook, self._open_secret(webhook), cursor or {})
        worker.task = asyncio.get_running_loop().create_task(self._run(worker), name=f"webhook-{webhook_id}")
        self._workers[webhook_id] = worker
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_cursors())

    def offer(self, webhook_id: str, event: WebhookEvent) -> None:
        """Queue an event unless the webhook's cursor shows it was settled already."""
        worker = self._workers.get(webhook_id)
        if worker is None:
            return
        if worker.sink is None and (
            event.event_type not in worker.webhook.events or event.offset < worker.positions.get(event.source, 0)
        ):
            return
        if len(worker.queue) >= self._queue_max:
            WEBHOOK_DELIVERIES.labels("gave_up").inc()
            return
        worker.queue.append(event)
        worker.wake.set()

    def update_cursor(self, webhook_id: str, positions: dict[str, int]) -> None:
        worker = self._workers.get(webhook_id)
        if worker is not None:
            for source, offset in positions.items():
                worker.positions[source] = max(worker.positions.get(source, 0), offset)

    def sync_sink(self, target_id: str, sink: Sink | None) -> None:
        """Start, keep or stop the worker of a ``Sink`` (None, or another replica's partner: stop)."""
        worker = self._workers.get(target_id)
        if sink is None or not self.owns(sink.partner):
            if worker is not None:
                if worker.task is not None:
                    worker.task.cancel()
                del self._workers[target_id]
            return
        if worker is not None:
            return
        stand_in = Webhook(sink.partner, target_id, sink.url, [], "", "")
        worker = _Worker(stand_in, "", {}, sink)
        worker.task = asyncio.get_running_loop().create_task(self._run(worker), name=f"sink-{target_id}")
        self._workers[target_id] = worker

    def has_worker(self, webhook_id: str) -> bool:
        return webhook_id in self._workers

    async def _run(self, worker: _Worker) -> None:
        while True:
            if not worker.queue:
                worker.wake.clear()
                await worker.wake.wait()
                continue
            event = worker.queue[0]
            msg_id = hashlib.sha256(
                f"{worker.webhook.webhook_id}:{event.source}:{event.offset}:{event.event_type}".encode()
            ).hexdigest()[:32]
            if worker.sink is not None:
                rendered = worker.sink.render(event)
                if rendered is None:  # the sink no longer wants it (e.g. its subscription ended)
                    worker.queue.popleft()
                    continue
                body, headers = rendered
            else:
                body = orjson.dumps(
                    {"type": event.event_type, "timestamp": event.occurred_at, "data": event.data}
                )
                headers = None  # Standard Webhooks headers, signed per attempt
            attempt = 0
            delivered = False
            while True:
                attempt += 1
                if await self._attempt(worker, msg_id, body, headers):
                    WEBHOOK_DELIVERIES.labels("delivered").inc()
                    delivered = True
                    break
                if attempt >= self.max_attempts:
                    WEBHOOK_DELIVERIES.labels("gave_up").inc()
                    log.warning(
                        "webhook %s: gave up on %s after %d attempts",
                        worker.webhook.webhook_id,
                        msg_id,
                        attempt,
                    )
                    break
                WEBHOOK_DELIVERIES.labels("failed").inc()
                delay = min(MAX_BACKOFF_S, self.backoff_s * (2 ** (attempt - 1)))
                await asyncio.sleep(delay * (0.8 + 0.4 * secrets.randbelow(1000) / 1000))
            worker.queue.popleft()
            if worker.sink is not None:
                worker.sink.settled(event, delivered)
                continue
            worker.positions[event.source] = max(worker.positions.get(event.source, 0), event.offset + 1)
            worker.dirty = True

    async def _attempt(self, worker: _Worker, msg_id: str, body: bytes, extra: dict[str, str] | None) -> bool:
        started = time.perf_counter()
        try:
            scheme, host, port, address = await self.policy.resolve(worker.webhook.url)
            parts = urlsplit(worker.webhook.url)
            ip_host = f"[{address}]" if ":" in address else address
            target = urlunsplit((scheme, f"{ip_host}:{port}", parts.path or "/", parts.query, ""))
            headers = {"host": parts.netloc.rsplit("@", 1)[-1]}
            if extra is not None:
                headers.update(extra)
            else:
                timestamp = int(time.time())
                headers.update(
                    {
                        "content-type": "application/json",
                        "webhook-id": msg_id,
                        "webhook-timestamp": str(timestamp),
                        "webhook-signature": sign(worker.secret, msg_id, timestamp, body),
                    }
                )
            response = await self._client.post(
                target, content=body, headers=headers, extensions={"sni_hostname": host}
            )
            ok = 200 <= response.status_code < 300
        except (httpx.HTTPError, ApiError, OSError) as exc:
            log.info("webhook %s attempt failed: %s", worker.webhook.webhook_id, type(exc).__name__)
            ok = False
        WEBHOOK_SECONDS.observe(time.perf_counter() - started)
        return ok

    async def _flush_cursors(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            self.save_dirty()

    def save_dirty(self) -> None:
        for webhook_id, worker in list(self._workers.items()):
            if worker.dirty:
                worker.dirty = False
                self._save_cursor(DeliveryCursor(webhook_id, dict(worker.positions)))

    def pending(self) -> int:
        return sum(len(w.queue) for w in self._workers.values())

    async def close(self) -> None:
        self.save_dirty()
        for worker in self._workers.values():
            if worker.task is not None:
                worker.task.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
        await self._client.aclose()
