"""A small, seeded stream of ``View`` records with labelled fraud, straight into the scorer.

The simulator (``fraudradar simulate``) produces raw telco events that go through ingest; this
module skips both and writes views directly, for the scorer's unit and integration tests, its
benchmark and the detector comparison when the whole pipeline is not needed. Identifiers are
random 32-hex pseudonyms (no plaintext ever exists). Scenarios follow the simulator's names.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from services.common.pseudonym import Pseudonymizer
from services.common.records import CallMeta, SimMeta, SmsMeta, View

SCENARIOS = (
    "sms_farm",
    "sim_farm_device",
    "wangiri",
    "spoofed_bank_caller",
    "sim_swap_takeover",
    "slow_low_farm",
    "sim_box",
)
MINUTE = 60_000
HOUR = 60 * MINUTE


@dataclass
class Labelled:
    """The generated stream plus which entities are fraud (and from when)."""

    views: list[View] = field(default_factory=list)
    fraud: dict[tuple[str, str], tuple[str, int]] = field(
        default_factory=dict
    )  # (type, entity) -> (scenario, start)
    normal_numbers: int = 0


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"


def _vid(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).hexdigest()


class Generator:
    """Seeded generator; ``start_ms`` is the first event time, everything is event time."""

    def __init__(
        self,
        seed: int = 0,
        start_ms: int = 1_790_000_000_000,
        operator: str = "op-nl",
        pseudonymizer: Pseudonymizer | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.ids = _Ids(self.rng)
        self.start_ms = start_ms
        self.operator = operator
        self.pseudonymizer = pseudonymizer
        self._n = 0

    def _view(self, entity_type: str, entity: str, role: str, kind: str, t_ms: int, **kw: Any) -> View:
        self._n += 1
        return View(
            view_id=_vid(self._n, entity, role),
            entity_type=entity_type,  # type: ignore[arg-type]
            entity=entity,
            role=role,  # type: ignore[arg-type]
            type=kind,  # type: ignore[arg-type]
            operator=self.operator,
            occurred_ms=t_ms,
            ingested_ms=t_ms,
            key_id="synthetic",
            **kw,
        )

    def sms(
        self,
        src: str,
        dst: str,
        t_ms: int,
        *,
        url: bool = False,
        device: str | None = None,
        imsi: str | None = None,
        cell: str | None = None,
        src_kind: str = "e164",
    ) -> list[View]:
        meta = SmsMeta(segments=1, has_url=url, chars=120)
        views = [
            self._view(
                "number",
                src,
                "out",
                "sms",
                t_ms,
                peer=dst,
                peer_kind="e164",
                number_kind=src_kind,
                sms=meta,
                device=device,
                imsi=imsi,
                cell=cell,
            ),
            self._view(
                "number", dst, "in", "sms", t_ms, peer=src, peer_kind=src_kind, number_kind="e164", sms=meta
            ),
        ]
        if device is not None:
            views.append(
                self._view(
                    "device",
                    device,
                    "out",
                    "sms",
                    t_ms,
                    number=src,
                    peer=dst,
                    imsi=imsi,
                    cell=cell,
                    sms=meta,
                    tac="35693803",
                )
            )
        return views

    def call(
        self,
        src: str,
        dst: str,
        t_ms: int,
        *,
        duration: float,
        answered: bool,
        device: str | None = None,
        imsi: str | None = None,
        cell: str | None = None,
        on_net: bool = True,
    ) -> list[View]:
        """``on_net=False``: a caller no reporting operator has as its subscriber (ingest marks its view)."""
        meta = CallMeta(duration_s=duration, answered=answered)
        views = [
            self._view(
                "number",
                src,
                "out",
                "call",
                t_ms,
                peer=dst,
                peer_kind="e164",
                number_kind="e164",
                call=meta,
                device=device,
                imsi=imsi,
                cell=cell,
                subscriber=on_net,
            ),
            self._view(
                "number", dst, "in", "call", t_ms, peer=src, peer_kind="e164", number_kind="e164", call=meta
            ),
        ]
        if device is not None:
            views.append(
                self._view(
                    "device",
                    device,
                    "out",
                    "call",
                    t_ms,
                    number=src,
                    peer=dst,
                    imsi=imsi,
                    cell=cell,
                    call=meta,
                    tac="35693803",
                )
            )
        return views

    def change(self, number: str, t_ms: int, change: str, device: str | None = None) -> list[View]:
        meta = SimMeta(change=change, device=device)  # type: ignore[arg-type]
        views = [self._view("number", number, "change", "sim", t_ms, sim=meta, device=device)]
        if device is not None:
            views.append(self._view("device", device, "change", "sim", t_ms, number=number, sim=meta))
        return views

    # ------------------------------------------------------------------------------------------
    def stream(
        self,
        normal: int = 2000,
        hours: float = 6.0,
        *,
        scenarios: tuple[str, ...] = SCENARIOS,
        fraud_start_h: float = 3.0,
        strength: float = 1.0,
        bank_numbers: list[str] | None = None,
        a2p_senders: list[str] | None = None,
    ) -> Labelled:
        """Normal subscribers (with hard negatives) for ``hours``; each scenario starts at ``fraud_start_h``."""
        rng = self.rng
        out = Labelled(normal_numbers=normal)
        end = self.start_ms + int(hours * HOUR)
        numbers = [self.ids.new() for _ in range(normal)]
        devices = {n: self.ids.new() for n in numbers}
        cells = [self.ids.new() for _ in range(max(4, normal // 50))]
        home = {n: rng.choice(cells) for n in numbers}
        contacts = {n: rng.sample(numbers, k=min(len(numbers), rng.randint(3, 12))) for n in numbers}
        views = out.views
        for number in numbers:
            rate_per_h = rng.uniform(0.2, 3.0)
            t = self.start_ms + int(rng.expovariate(rate_per_h) * HOUR)
            while t < end:
                dst = rng.choice(contacts[number])
                if rng.random() < 0.6:
                    views += self.sms(
                        number, dst, t, url=rng.random() < 0.03, device=devices[number], cell=home[number]
                    )
                else:
                    answered = rng.random() < 0.75
                    views += self.call(
                        number,
                        dst,
                        t,
                        duration=rng.uniform(20, 400) if answered else 0.0,
                        answered=answered,
                        device=devices[number],
                        cell=home[number],
                    )
                t += int(rng.expovariate(rate_per_h) * HOUR) + 1000
        # hard negatives: group chatters (many SMS, known recipients), a call centre with inbound traffic
        for _ in range(max(2, normal // 500)):
            chatter = rng.choice(numbers)
            t = self.start_ms + int(rng.uniform(0, hours * 0.8) * HOUR)
            for _ in range(120):
                views += self.sms(
                    chatter, rng.choice(contacts[chatter]), t, device=devices[chatter], cell=home[chatter]
                )
                t += int(rng.uniform(5, 60) * 1000)
        centre = self.ids.new()
        t = self.start_ms
        while t < end:
            views += self.call(centre, rng.choice(numbers), t, duration=rng.uniform(60, 600), answered=True)
            views += self.call(
                rng.choice(numbers), centre, t + 30_000, duration=rng.uniform(60, 600), answered=True
            )
            t += int(rng.uniform(30, 120) * 1000)
        for sender in a2p_senders or []:
            t = self.start_ms
            while t < end:
                views += self.sms(sender, rng.choice(numbers), t, url=True, src_kind="alphanumeric")
                t += int(rng.uniform(1, 5) * 1000)

        start = self.start_ms + int(fraud_start_h * HOUR)
        for scenario in scenarios:
            getattr(self, "_" + scenario)(
                out, numbers, start, end, strength=strength, banks=bank_numbers or []
            )
        views.sort(key=lambda v: v.occurred_ms)
        return out

    def _mark(self, out: Labelled, entity_type: str, entity: str, scenario: str, start: int) -> None:
        out.fraud.setdefault((entity_type, entity), (scenario, start))

    def _sms_farm(
        self, out: Labelled, victims: list[str], start: int, end: int, *, strength: float, banks: list[str]
    ) -> None:
        rng = self.rng
        farm = self.ids.new()
        device, cell = self.ids.new(), self.ids.new()
        self._mark(out, "number", farm, "sms_farm", start)
        self._mark(out, "device", device, "sms_farm", start)
        t = start
        for _ in range(int(300 * strength)):
            out.views.extend(self.sms(farm, self.ids.new(), t, url=True, device=device, cell=cell))
            t += int(rng.uniform(0.5, 3) * 1000)

    def _sim_farm_device(
        self, out: Labelled, victims: list[str], start: int, end: int, *, strength: float, banks: list[str]
    ) -> None:
        rng = self.rng
        device, cell = self.ids.new(), self.ids.new()
        self._mark(out, "device", device, "sim_farm_device", start)
        t = start
        for _ in range(max(3, int(8 * strength))):
            sim, imsi = self.ids.new(), self.ids.new()
            self._mark(out, "number", sim, "sim_farm_device", start)
            for _ in range(25):
                out.views.extend(
                    self.sms(
                        sim, self.ids.new(), t, url=rng.random() < 0.5, device=device, imsi=imsi, cell=cell
                    )
                )
                t += int(rng.uniform(2, 8) * 1000)

    def _wangiri(
        self, out: Labelled, victims: list[str], start: int, end: int, *, strength: float, banks: list[str]
    ) -> None:
        rng = self.rng
        caller = self.ids.new()
        self._mark(out, "number", caller, "wangiri", start)
        t = start
        for _ in range(int(150 * strength)):
            out.views.extend(self.call(caller, rng.choice(victims), t, duration=0.0, answered=False, on_net=False))
            t += int(rng.uniform(2, 10) * 1000)

    def _spoofed_bank_caller(
        self, out: Labelled, victims: list[str], start: int, end: int, *, strength: float, banks: list[str]
    ) -> None:
        rng = self.rng
        if not banks:
            return
        bank = banks[0]
        self._mark(out, "number", bank, "spoofed_bank_caller", start)
        t = start
        for _ in range(5):
            out.views.extend(
                self.call(bank, rng.choice(victims), t, duration=rng.uniform(60, 300), answered=True)
            )
            t += int(rng.uniform(60, 600) * 1000)

    def _sim_swap_takeover(
        self, out: Labelled, victims: list[str], start: int, end: int, *, strength: float, banks: list[str]
    ) -> None:
        rng = self.rng
        victim = rng.choice(victims)
        new_device = self.ids.new()
        self._mark(out, "number", victim, "sim_swap_takeover", start)
        self._mark(out, "device", new_device, "sim_swap_takeover", start)
        out.views.extend(self.change(victim, start, "swap", device=new_device))
        t = start + 5 * MINUTE
        bank_sender = self.ids.new()
        for _ in range(3):
            out.views.extend(self.sms(bank_sender, victim, t, src_kind="alphanumeric"))
            t += int(rng.uniform(30, 120) * 1000)
        for _ in range(int(15 * strength)):
            out.views.extend(self.sms(victim, self.ids.new(), t, url=True, device=new_device))
            t += int(rng.uniform(10, 40) * 1000)

    def _slow_low_farm(
        self, out: Labelled, victims: list[str], start: int, end: int, *, strength: float, banks: list[str]
    ) -> None:
        rng = self.rng
        farm = self.ids.new()
        self._mark(out, "number", farm, "slow_low_farm", start)
        t = start
        while t < end:
            out.views.extend(self.sms(farm, self.ids.new(), t, url=rng.random() < 0.8))
            t += int(rng.uniform(60, 180) * 1000 / max(strength, 0.1))

    def _sim_box(
        self, out: Labelled, victims: list[str], start: int, end: int, *, strength: float, banks: list[str]
    ) -> None:
        rng = self.rng
        box, device, cell = self.ids.new(), self.ids.new(), self.ids.new()
        self._mark(out, "number", box, "sim_box", start)
        self._mark(out, "device", device, "sim_box", start)
        t = start
        while t < end:
            out.views.extend(
                self.call(
                    box,
                    rng.choice(victims),
                    t,
                    duration=rng.uniform(30, 240),
                    answered=rng.random() < 0.8,
                    device=device,
                    cell=cell,
                )
            )
            t += int(rng.uniform(20, 60) * 1000 / max(strength, 0.1))
