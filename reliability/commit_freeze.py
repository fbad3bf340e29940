"""``python -m reliability.commit_freeze <service> ...``: a service that can be frozen inside its
commit path, between produce and commit (the freeze scenario runs its scorer replicas so).

When the file named by ``RELIABILITY_FREEZE_TRIGGER`` exists as a commit reaches the point
right before it commits (exactly-once: the outputs, changelog and offsets are in the open
transaction, ``commit_transaction`` not called yet), the process deletes the file and stops
itself (SIGSTOP); the harness resumes it (SIGCONT) after the freeze. Without the file it is the
plain service. The patch is installed by ``main`` only: importing this module changes nothing.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

TRIGGER_ENV = "RELIABILITY_FREEZE_TRIGGER"


def install(trigger: Path) -> None:
    from services.common.stream.commit import Committer

    original = Committer.before_commit

    def before_commit(self: Committer) -> None:
        if trigger.exists():
            trigger.unlink(missing_ok=True)
            os.kill(os.getpid(), signal.SIGSTOP)
        original(self)

    Committer.before_commit = before_commit  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    install(Path(os.environ[TRIGGER_ENV]))
    from services.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
