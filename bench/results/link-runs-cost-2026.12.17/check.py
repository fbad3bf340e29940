"""What SLOW_LINK_SPREAD's runs gate (policy 2026.12.17) lets through: an established number (three
friends texted the day before; no fresh SIM, swap, modem or flagged device; models not warm) sends
link SMS to strangers in two runs twelve hours apart; printed: the highest score, the alerts and
the reasons fired. Also the clustering farm of tests/scorer/test_paced.py: the SMS that alerts.

    PYTHONPATH=<checkout> python bench/results/link-runs-cost-2026.12.17/check.py > OUT.txt
(run from the checkout whose policy is measured: main's export for "before", this branch for "after")
"""

from services.scorer.partition import PartitionScorer
from tests.scorer.helpers import MIN, T0, pid, sms_out
from tests.scorer.test_paced import PSEUDO

eng = PartitionScorer.default(PSEUDO)
farm = pid("clustering-farm")
times = [T0 + i * 5_000 for i in range(8)]
times += [T0 + 15 * MIN * k + i * 5_000 for k in range(1, 12) for i in range(3)]
outs = [eng.process(sms_out(farm, pid(f"cluster-victim{i}"), t, url=True, n=i)) for i, t in enumerate(times)]
print("policy", eng.policy.spec.version)
print("clustering farm: first alert at SMS index", next(i for i, o in enumerate(outs) if o.alerts))
for n, gap in ((9, 3_000), (10, 3_000), (14, 29_000), (15, 29_000), (20, 29_000)):
    eng = PartitionScorer.default(PSEUDO)
    s = pid(f"quiet-run{n}{gap}")
    views = [sms_out(s, pid(f"qf{n}{gap}{i}"), T0 - 24 * 60 * MIN + i * MIN, n=i) for i in range(3)]
    views += [sms_out(s, pid(f"qv{n}{gap}{i}"), T0 + i * gap, url=True, n=10 + i) for i in range(n)]
    views += [sms_out(s, pid(f"qw{n}{gap}{i}"), T0 + 12 * 60 * MIN + i * gap, url=True, n=100 + i) for i in range(n)]
    o = [eng.process(v) for v in views]
    fired = sorted({r.code for x in o for r in (x.risk.reasons if x.risk else [])})
    print(f"two runs of {n}, {gap // 1000} s apart: max score {max(x.score for x in o)}, "
          f"alerts {sum(bool(x.alerts) for x in o)}, reasons {fired}")
