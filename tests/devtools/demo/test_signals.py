"""SIGTERM/SIGINT during the demo: raised at once, or held back while a child is being started."""

from __future__ import annotations

import os
import signal

import pytest

from services.devtools.demo.signals import SIGNALS, Interrupted, spawning, stopping_on_signals


def test_a_signal_while_a_child_starts_is_raised_once_the_start_returned() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stopping_on_signals() as received:
        started = False
        with pytest.raises(Interrupted, match="SIGTERM"), spawning():
            os.kill(os.getpid(), signal.SIGTERM)
            started = True                          # the start is not cut short
        assert started and received == [signal.SIGTERM] and not SIGNALS.held
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_first_signal_interrupts_and_later_ones_do_not_cut_the_cleanup_short() -> None:
    with stopping_on_signals() as received:
        with pytest.raises(Interrupted, match="SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)        # noted, not raised
        assert received == [signal.SIGINT, signal.SIGTERM]
