"""Engine alone, CPU time per view: the views of bench/scorer.py's ``_views(100_000, seed=3)``
through a fresh PartitionScorer, best of three. Run from a checkout (main's export for "before"):

    PYTHONPATH=<checkout> python bench/results/link-runs-cost-2026.12.17/engine_cpu.py
"""

import time

from bench.scorer import _views
from services.common.pseudonym import Pseudonymizer, parse_key
from services.scorer.partition import PartitionScorer
from services.scorer.policy import Policy
from tests.conftest import TEST_PSEUDONYM_KEY

views = _views(100_000, seed=3)
best = None
for _ in range(3):
    eng = PartitionScorer.default(Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY)))
    t = time.process_time()
    for v in views:
        eng.process(v)
    d = (time.process_time() - t) / len(views) * 1e6
    best = d if best is None else min(best, d)
version = Policy.load(Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY))).spec.version
print(version, f"{best:.2f} us/view (CPU, best of 3, {len(views)} views)")
