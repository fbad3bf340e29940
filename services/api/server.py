"""How the partner API is served: uvicorn with limits on what a connection may hold.

uvicorn's httptools protocol has no limit on the size or number of request headers, no
deadline for a request's head and none for a slowly dripped body; a client could hold memory
with one huge header and hold connections open by sending a byte now and then. ``guarded``
makes a protocol class that adds those limits (docs/api.md "Server limits"):

- the request line and headers above ``max_header_bytes``, or more than ``max_headers``
  header fields, answer 431 and close the connection (counted as the bytes arrive, so a
  huge header is refused before it is held);
- the head of a request must arrive within ``header_timeout_s`` of the connection opening
  (or of the previous response); else the connection is closed;
- while a body is being received, each next piece must arrive within ``body_timeout_s``;
- idle keep-alive connections close after ``keepalive_timeout_s`` (uvicorn's own setting).

``uvicorn_config`` is what ``fraudradar api`` runs and what the API tests serve with.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.api.config import ApiSettings
from services.api.metrics import CONNECTIONS_REFUSED

log = logging.getLogger("fraudradar.api")

_TOO_LARGE = b'{"status":431,"code":"INVALID_ARGUMENT","message":"Request headers are too large or too many."}'
_TIMEOUT = b'{"status":408,"code":"INVALID_ARGUMENT","message":"The request did not arrive in time."}'


def _raw_response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


def guarded(
    *,
    max_header_bytes: int,
    max_headers: int,
    header_timeout_s: float,
    body_timeout_s: float,
) -> type[HttpToolsProtocol]:
    """An ``HttpToolsProtocol`` with header size/count limits and head and body deadlines."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True
            self._head_bytes = 0
            self._head_fields = 0
            self._head_size = 0  # request line and header fields as parsed
            self._refused = False
            self._in_body = False
            self._timer: asyncio.TimerHandle | None = None

        # -- deadlines ------------------------------------------------------------------

        def _arm(self, seconds: float, why: str) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expired, why)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self, why: str) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            CONNECTIONS_REFUSED.labels(why).inc()
            if why == "header_timeout" and self._head_bytes:
                self.transport.write(_raw_response(b"408 Request Timeout", _TIMEOUT))
            if why == "body_timeout" and self.cycle is not None:
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.close()

        def _refuse(self) -> None:
            self._refused = True
            self._disarm()
            CONNECTIONS_REFUSED.labels("headers_too_large").inc()
            if not self.transport.is_closing():
                self.transport.write(_raw_response(b"431 Request Header Fields Too Large", _TOO_LARGE))
                self.transport.close()

        # -- protocol -------------------------------------------------------------------

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(header_timeout_s, "header_timeout")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_head:
                self._head_bytes += len(data)
            elif self._in_body:
                self._arm(body_timeout_s, "body_timeout")
            super().data_received(data)
            if self._in_head and not self._refused and self._head_bytes > max_header_bytes:
                self._refuse()

        def on_url(self, url: bytes) -> None:
            self._head_size += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_fields += 1
            self._head_size += len(name) + len(value) + 4
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self._refused:
                return
            if self._head_fields > max_headers or self._head_size > max_header_bytes:
                self._refuse()
                return
            self._in_head = False
            self._head_fields = self._head_size = 0
            chunked = any(n == b"transfer-encoding" for n, _ in self.headers)
            length = next((v for n, v in self.headers if n == b"content-length"), b"0")
            self._in_body = chunked or (length.isdigit() and int(length) > 0)
            if self._in_body:
                self._arm(body_timeout_s, "body_timeout")
            else:
                self._disarm()
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if self._refused:
                return
            super().on_body(body)

        def on_message_complete(self) -> None:
            if self._refused:
                return
            if self._in_body:
                self._in_body = False
                self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # waiting for the next request on this connection: its head starts now
            self._in_head, self._head_bytes, self._head_fields, self._head_size = True, 0, 0, 0
            self._arm(header_timeout_s, "header_timeout")

    return GuardedHttpToolsProtocol


def uvicorn_config(app: Any, settings: ApiSettings, *, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """The server settings of the partner API (limits above; proxies only when listed)."""
    proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    values: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": guarded(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
        ),
        "timeout_keep_alive": max(1, round(settings.keepalive_timeout_s)),
        # X-Forwarded-For/-Proto are believed only from the listed proxies (none by default):
        # the client address the auth-failure buckets key on cannot be forged.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
        "server_header": False,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 20,
    }
    values.update(overrides)
    return uvicorn.Config(app, **values)
