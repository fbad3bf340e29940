"""What every scenario gets: the rig, the scale parameters and what earlier scenarios left."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from reliability.rig import Rig
from reliability.scan import Identifiers


@dataclass(frozen=True)
class Params:
    events: int = 1_000_000        # scorer crash run: simulated raw events
    kills: int = 20                # scorer crash run: kill -9 moments
    freezes: int = 4               # scorer freeze run: SIGSTOPs of one of two replicas past its session
    hostile: int = 10_000          # malformed events
    valid: int = 20_000            # valid events mixed with them
    broker_events: int = 60_000    # events produced while the broker is killed
    broker_kills: int = 2          # broker SIGKILLs during the broker scenario
    enumeration: int = 10_000      # sequential numbers in the enumeration sweep
    schemathesis_examples: int = 60
    lookups: int = 200             # privacy: N lookups -> N audit records
    seed: int = 7
    timeout_s: float = 3600.0      # upper bound of any single wait


@dataclass
class Context:
    rig: Rig
    params: Params
    identifiers: Identifiers = field(default_factory=Identifiers)
    quiet: bool = False
    notes: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.params.seed)

