"""SIGTERM and SIGINT stop every child the demo started, also one being started right then."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from services.devtools.demo.console import say


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived: stop every child and leave."""


@dataclass
class Signals:
    """SIGTERM/SIGINT seen by the demo. While a child is being started (``spawning``), the first
    signal is held back and raised once the start returned: raised inside ``Popen`` it would
    leave a child running that no one holds a handle to, and so no one stops."""

    received: list[int] = field(default_factory=list)
    spawning: int = 0
    held: bool = False


SIGNALS = Signals()


@contextmanager
def spawning() -> Iterator[None]:
    """Hold SIGTERM/SIGINT back while the body starts a child process (see ``Signals``)."""
    SIGNALS.spawning += 1
    try:
        yield
    finally:
        SIGNALS.spawning -= 1
        if not SIGNALS.spawning and SIGNALS.held:
            SIGNALS.held = False
            raise Interrupted(signal.Signals(SIGNALS.received[0]).name)


@contextmanager
def stopping_on_signals() -> Iterator[list[int]]:
    """Install ``interrupt`` for SIGTERM and SIGINT for the body (the handlers before it come
    back after); yields the list of the signals received."""
    SIGNALS.received.clear()
    SIGNALS.spawning, SIGNALS.held = 0, False
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield SIGNALS.received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interrupt(signum: int, _frame: Any) -> None:
    """The handler of SIGTERM and SIGINT: the first raises ``Interrupted`` in the main thread (held
    back while a child is being started), whose ``finally`` blocks stop the services, the
    producer and the broker the demo started; later ones are noted and ignored, so a second
    Ctrl-C does not cut that cleanup short (it is bounded: SIGKILL after 30 s per service)."""
    SIGNALS.received.append(signum)
    if len(SIGNALS.received) > 1:
        return
    say(f"\n{signal.Signals(signum).name}: stopping every process the demo started...")
    if SIGNALS.spawning:
        SIGNALS.held = True
        return
    raise Interrupted(signal.Signals(signum).name)
