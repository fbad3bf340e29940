"""``fraudradar <service>`` that holds still inside its commit path (a test helper, run as a
process by ``test_ingest_broker_restart.py``): on commit number ``HOLD_AT_COMMIT`` its outputs and
the offsets are in the open transaction, ``commit_transaction`` not called yet; it writes the file
``HOLD_MARKER`` and waits until the file ``HOLD_RELEASE`` exists. Only the loop's thread waits: the
clients' IO threads keep running and see the broker go away, as they would while a batch is
being processed when the broker dies."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from services.cli import main
from services.common.stream.commit import Committer

_calls = [0]


def _hold_once(self: Committer) -> None:
    _calls[0] += 1
    if _calls[0] == int(os.environ["HOLD_AT_COMMIT"]):
        Path(os.environ["HOLD_MARKER"]).write_text(str(os.getpid()))
        release = Path(os.environ["HOLD_RELEASE"])
        while not release.exists():
            time.sleep(0.05)


Committer.before_commit = _hold_once  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
