"""JSON-lines logging for every service.

One object per line: ``ts`` (UTC RFC 3339), ``level``, ``service``, ``logger``, ``msg`` and any
``extra={...}`` fields. Callers log counts, codes, topics and offsets: never a number, IMEI,
IMSI or message content (the privacy scan in the tests reads these logs).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from datetime import UTC, datetime

from services.common.metrics import KAFKA_SLOW_STEPS

_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str)


class SlowClientSteps(logging.Filter):
    """kafka-python warns about every step of its network event loop that runs past 0.1 s
    ("... is blocking the event loop -- likely a tight sync loop"). On a busy node (CPU
    throttling, a neighbour, a large fetch decoded in the step) that is several lines a
    second, each claiming a bug. This filter, on the ``kafka.net.selector`` logger, counts
    them in ``fraudradar_kafka_client_slow_steps_total`` and writes at most one summary per
    ``every_s``, at the first slow step after it (steps followed by quiet are counted, and
    summed into the next summary): the count and the longest step. The first slow step and any
    of ``warn_s`` or more (long enough to matter next to a 10 s session) are written at once,
    the latter at warning level; summaries of shorter steps at info. Other records of that
    logger pass unchanged."""

    _PATTERN = re.compile(r"ran for ([0-9.]+)s \(>[0-9.]+s threshold\)\. It is blocking the event loop")

    def __init__(self, service: str, every_s: float = 60.0, warn_s: float = 1.0) -> None:
        super().__init__()
        self.counter = KAFKA_SLOW_STEPS.labels(service=service)
        self.every_s = every_s
        self.warn_s = warn_s
        self.log = logging.getLogger("fraudradar.kafka")
        self._lock = threading.Lock()
        self._steps = 0
        self._longest = 0.0
        self._since = time.monotonic()
        self._reported = False      # the first slow step is written at once, later ones summed

    def filter(self, record: logging.LogRecord) -> bool:
        # a filter runs inside the caller's log call, here kafka-python's network loop: it must
        # not raise, so anything it cannot read passes through to the handlers unchanged
        if "blocking the event loop" not in str(record.msg):
            return True
        try:
            match = self._PATTERN.search(record.getMessage())
        except Exception:   # a record whose arguments do not format: logging reports it
            return True
        if match is None:
            return True
        seconds = float(match.group(1))
        self.counter.inc()
        with self._lock:
            now = time.monotonic()
            self._steps += 1
            self._longest = max(self._longest, seconds)
            if self._reported and now - self._since < self.every_s and seconds < self.warn_s:
                return False
            self._reported = True
            steps, longest, window = self._steps, self._longest, now - self._since
            self._steps, self._longest, self._since = 0, 0.0, now
        self.log.log(logging.WARNING if longest >= self.warn_s else logging.INFO,
                     "kafka client event-loop steps past 0.1 s", extra={
                         "steps": steps, "longest_s": round(longest, 3), "window_s": round(window, 1)})
        return False


def setup_logging(service: str, level: str = "INFO") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python is chatty at INFO and logs broker addresses only; keep its warnings.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    selector = logging.getLogger("kafka.net.selector")
    selector.filters[:] = [f for f in selector.filters if not isinstance(f, SlowClientSteps)]
    selector.addFilter(SlowClientSteps(service))
    return logging.getLogger(f"fraudradar.{service}")
