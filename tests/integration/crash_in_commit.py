"""``fraudradar <service>`` that kills itself (SIGKILL) inside the commit path (a test helper,
run as a process by ``test_ingest_kafka.py``): on commit number ``CRASH_AT_COMMIT`` its outputs
are sent and acknowledged (exactly-once: in the open transaction, with the offsets) and the
offsets not yet committed — the moment a crash used to redeliver views."""

from __future__ import annotations

import os
import signal
import sys

from services.cli import main
from services.common.stream.commit import Committer

_calls = [0]


def _crash_once(self: Committer) -> None:
    _calls[0] += 1
    if _calls[0] == int(os.environ["CRASH_AT_COMMIT"]):
        os.kill(os.getpid(), signal.SIGKILL)


Committer.before_commit = _crash_once  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
