"""The small HTTP side door of every service: /metrics, /healthz, /readyz (+ extra routes).

A stdlib ``ThreadingHTTPServer`` on a daemon thread, so the consumer loop stays the only
thread doing stream work. ``/healthz`` fails when the loop has not beaten for ``stall_after_s``
(a wedged poll); ``/readyz`` follows a flag the service sets (assigned and caught up).
Extra routes (ingest's batch push) plug in as ``(method, path) -> handler``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

# handler(body, headers) -> (status, json-able body, extra headers)
Handler = Callable[[bytes, dict[str, str]], tuple[int, object, dict[str, str]]]


class Health:
    def __init__(self, stall_after_s: float = 120.0) -> None:
        self.stall_after_s = stall_after_s
        self._beat = time.monotonic()
        self.ready = False
        self.reason = "starting"

    def beat(self) -> None:
        self._beat = time.monotonic()

    def live(self) -> bool:
        return time.monotonic() - self._beat < self.stall_after_s

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self.ready, self.reason = ready, reason


class ServiceHttp:
    def __init__(self, host: str, port: int, health: Health, max_body: int = 8 * 1024 * 1024) -> None:
        self.health = health
        self.routes: dict[tuple[str, str], Handler] = {}
        self.max_body = max_body
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return  # request lines may carry nothing personal, but keep logs to the JSON logger

            def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(obj).encode(), "application/json", headers)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    live = outer.health.live()
                    self._json(200 if live else 503, {"status": "ok" if live else "stalled"})
                elif path == "/readyz":
                    h = outer.health
                    self._json(200 if h.ready else 503, {"ready": h.ready, "reason": h.reason})
                else:
                    self._json(404, {"status": 404, "code": "NOT_FOUND", "message": "no such route"})

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                handler = outer.routes.get(("POST", path))
                if handler is None:
                    self._json(404, {"status": 404, "code": "NOT_FOUND", "message": "no such route"})
                    return
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if length < 0:
                    self._json(411, {"status": 411, "code": "LENGTH_REQUIRED", "message": "Content-Length required"})
                    return
                if length > outer.max_body:
                    self.close_connection = True
                    self._json(413, {"status": 413, "code": "PAYLOAD_TOO_LARGE",
                                     "message": f"body is larger than {outer.max_body} bytes"})
                    return
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    status, obj, extra = handler(body, headers)
                except Exception:  # never a stack trace to the client; the service logs it
                    status, obj, extra = 500, {"status": 500, "code": "INTERNAL", "message": "internal error"}, {}
                if "x-correlator" in headers:
                    extra = {**extra, "x-correlator": headers["x-correlator"][:256]}
                self._json(status, obj, extra)

        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> ServiceHttp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
