"""``fraudradar score`` that freezes itself inside the commit path (a test helper, run as a
process by ``test_exactly_once_kafka.py``): on commit number ``FREEZE_AT_COMMIT`` it has sent the
batch's outputs, the changelog and the offsets in the open transaction, writes the file
``FREEZE_MARKER`` and stops itself with SIGSTOP right before ``commit_transaction`` — a paused
pod, a VM migration or CPU starvation at the worst moment. SIGCONT resumes it there."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from services.common.stream.commit import Committer
from services.scorer import service

_calls = [0]


def _freeze_once(self: Committer) -> None:
    _calls[0] += 1
    if _calls[0] == int(os.environ["FREEZE_AT_COMMIT"]):
        Path(os.environ["FREEZE_MARKER"]).write_text(",".join(f"{tp.topic}[{tp.partition}]" for tp in self.pending))
        os.kill(os.getpid(), signal.SIGSTOP)


Committer.before_commit = _freeze_once  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(service.main(sys.argv[1:]))
