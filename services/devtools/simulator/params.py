"""World parameters: what kind of network a simulated run is, drawn per seed from documented ranges.

A *fixed* world is the simulator's reference world (the constants it always had), kept for
regression comparisons. A *random* world draws every parameter below from its range with a
generator seeded by the run's seed, so two seeds are two different networks (other population
mix, other A2P sender names, other businesses, other fraud strength), not one network re-rolled.
The ranges are documented in docs/simulator.md ("Randomised worlds"); ``RANGES`` is the source.

Rates "per 100k" are per 100 000 normal subscribers; counts are at least one where a class is
present at all (a 500-subscriber world still has one call centre).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Final

import numpy as np

from services.devtools.simulator import catalog

WORLDS: Final[tuple[str, ...]] = ("random", "fixed")

# name -> (low, high) for uniform draws; integers where both bounds are ints.
RANGES: Final[dict[str, tuple[float, float]]] = {
    # population
    "roaming_share": (0.005, 0.04),          # Dutch subscribers abroad during the run
    "dual_sim_share": (0.01, 0.06),          # second (business) line in the same phone
    "visitor_share": (0.004, 0.03),          # foreign tourists on Dutch cells, per subscriber
    "contacts_mean": (4.0, 12.0),            # size of a subscriber's recurring circle
    "sms_per_day_mean": (1.0, 5.0),
    "calls_per_day_mean": (1.5, 5.0),
    "stranger_share": (0.02, 0.12),          # P2P messages/calls to someone outside the circle
    "sms_reply_share": (0.35, 0.7),
    "a2p_per_day": (0.6, 2.5),               # A2P messages per subscriber per day
    # A2P senders
    "a2p_alphanumeric": (6, 24),             # distinct alphanumeric sender ids
    "a2p_short_codes": (2, 8),
    "marketing_bursts_per_100k_day": (2.0, 12.0),
    "marketing_burst_share": (0.005, 0.05),  # share of subscribers one burst reaches
    "marketing_burst_minutes": (10.0, 120.0),
    # businesses and organisations
    "call_centres_per_100k": (3.0, 12.0),
    "call_centre_agents": (4, 30),
    "call_centre_calls_per_agent_day": (40.0, 220.0),
    "call_centre_answered": (0.3, 0.85),
    "call_centre_median_s": (15.0, 240.0),   # short robo-like calls to long sales calls
    "bulk_phones_per_100k": (3.0, 12.0),     # businesses texting customers from a phone
    "modem_businesses_per_100k": (3.0, 14.0),  # appointment reminders from a modem (1-4 SIMs)
    "modem_reminders_per_day": (60.0, 500.0),
    "modem_reply_share": (0.15, 0.6),
    "iot_fleets_per_100k": (1.0, 6.0),
    "iot_fleet_size": (20, 300),
    "iot_reports_per_sim_day": (2.0, 48.0),
    "group_chats_per_100k": (20.0, 60.0),
    "group_organisers_per_100k": (10.0, 50.0),
    "group_organiser_members": (15, 120),
    "family_phone_share": (0.002, 0.012),    # phones shared by 2-4 SIMs of one household
    # identity changes per subscriber per day
    "device_change_rate": (0.002, 0.008),
    "owner_swap_rate": (0.0008, 0.003),
    "lost_phone_share": (0.2, 0.6),          # owner swaps that come with a new phone
    "activation_rate": (0.0005, 0.002),
    "port_out_rate": (0.0002, 0.0008),
    # fraud
    "fraud_intensity": (0.5, 1.5),           # multiplies --intensity, drawn per scenario
    # SIM-swap takeovers (scenarios.sim_swap_takeover_random): how this world's fraudsters work
    "takeover_new_device_share": (0.5, 1.0),  # the swapped SIM goes into the fraudster's own phone
    "takeover_first_act_minutes": (2.0, 30.0),  # latest first act after the swap (each: 1 min .. this)
    "takeover_codes_share": (0.5, 1.0),      # takeovers during which one-time codes arrive
    "takeover_link_share": (0.0, 0.8),       # the fraudster's SMS with a link (0: "help me" texts only)
    "takeover_contact_share": (0.0, 0.7),    # of its SMS to the victim's contacts (rest: strangers)
    # look-alikes of a takeover
    "traveller_share": (0.002, 0.01),        # subscribers on a day trip: new cells from some hour on
    "lost_away_share": (0.1, 0.5),           # lost phones lost on a trip (new SIM, new phone, new cells)
    # takeovers whose fraudster also sets unconditional call forwarding, up to 15 min before or after
    # the swap (the bank's confirmation calls go to the fraudster)
    "takeover_forwarding_share": (0.0, 0.6),
}


@dataclass(frozen=True)
class A2PSender:
    name: str          # alphanumeric id (at most 11 characters) or short code
    category: str      # bank, government, parcel, retail, operator, marketing, service
    weight: float      # share of everyday A2P traffic
    url_share: float   # share of its messages with a link
    otp: bool          # sends one-time codes


@dataclass(frozen=True)
class WorldParams:
    kind: str
    seed: int
    operator_shares: tuple[float, ...]
    roaming_share: float
    dual_sim_share: float
    visitor_share: float
    visitor_prefixes: tuple[tuple[str, int], ...]
    contacts_mean: float
    sms_per_day_mean: float
    calls_per_day_mean: float
    stranger_share: float
    sms_reply_share: float
    a2p_per_day: float
    a2p_senders: tuple[A2PSender, ...]
    marketing_bursts_per_100k_day: float
    marketing_burst_share: float
    marketing_burst_minutes: float
    call_centres_per_100k: float
    call_centre_agents: tuple[int, int]
    call_centre_calls_per_agent_day: float
    call_centre_answered: float
    call_centre_median_s: float
    bulk_phones_per_100k: float
    modem_businesses_per_100k: float
    modem_reminders_per_day: float
    modem_reply_share: float
    iot_fleets_per_100k: float
    iot_fleet_size: tuple[int, int]
    iot_reports_per_sim_day: float
    group_chats_per_100k: float
    group_organisers_per_100k: float
    group_organiser_members: tuple[int, int]
    family_phone_share: float
    device_change_rate: float
    owner_swap_rate: float
    lost_phone_share: float
    activation_rate: float
    port_out_rate: float
    fraud_intensity: dict[str, float] = field(default_factory=dict)
    # drawn after everything above (a seed's earlier parameters stay as they were); the fixed
    # world's takeover is the reference scenario and has no travellers
    takeover_new_device_share: float = 1.0
    takeover_first_act_minutes: float = 2.0
    takeover_codes_share: float = 1.0
    takeover_link_share: float = 0.65
    takeover_contact_share: float = 0.65
    traveller_share: float = 0.0
    lost_away_share: float = 0.0
    takeover_forwarding_share: float = 0.0

    @property
    def random(self) -> bool:
        return self.kind == "random"

    def otp_senders(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.a2p_senders if s.otp)

    def to_json(self) -> dict[str, object]:
        """The drawn parameters as plain JSON (reports state which world they measured)."""
        out = asdict(self)
        out["a2p_senders"] = [asdict(s) for s in self.a2p_senders]
        out["visitor_prefixes"] = [p for p, _ in self.visitor_prefixes]
        return out


_FIXED_A2P_WEIGHTS: Final[dict[str, float]] = {
    "ING": 0.14, "Rabobank": 0.14, "ABNAMRO": 0.10, "PostNL": 0.16, "DHL": 0.10, "bol.com": 0.08,
    "DigiD": 0.06, "KPN": 0.06, "3010": 0.06, "4004": 0.05, "5858": 0.05}
_FIXED_CATEGORY: Final[dict[str, str]] = {
    "ING": "bank", "Rabobank": "bank", "ABNAMRO": "bank", "PostNL": "parcel", "DHL": "parcel", "bol.com": "retail",
    "DigiD": "government", "KPN": "operator", "3010": "bank", "4004": "bank", "5858": "retail"}


def fixed_world(seed: int = 0) -> WorldParams:
    """The reference world: the constants the simulator used before worlds were randomised."""
    senders = tuple(A2PSender(name, _FIXED_CATEGORY[name], w, 0.92 if name in catalog.A2P_URL_SENDERS else 0.0,
                              name in catalog.A2P_OTP_SENDERS) for name, w in _FIXED_A2P_WEIGHTS.items())
    return WorldParams(
        kind="fixed", seed=seed, operator_shares=tuple(op[2] for op in catalog.DUTCH_OPERATORS),
        roaming_share=0.015, dual_sim_share=0.03, visitor_share=0.01, visitor_prefixes=(("+4915", 9), ("+4917", 9)),
        contacts_mean=7.0, sms_per_day_mean=2.5, calls_per_day_mean=3.0, stranger_share=0.06, sms_reply_share=0.55,
        a2p_per_day=1.3, a2p_senders=senders, marketing_bursts_per_100k_day=0.0, marketing_burst_share=0.0,
        marketing_burst_minutes=0.0, call_centres_per_100k=0.0, call_centre_agents=(6, 15),
        call_centre_calls_per_agent_day=70.0, call_centre_answered=0.62, call_centre_median_s=200.0,
        bulk_phones_per_100k=0.0, modem_businesses_per_100k=0.0, modem_reminders_per_day=0.0,
        modem_reply_share=0.0, iot_fleets_per_100k=0.0, iot_fleet_size=(0, 0), iot_reports_per_sim_day=0.0,
        group_chats_per_100k=0.0, group_organisers_per_100k=0.0, group_organiser_members=(0, 0),
        family_phone_share=0.0, device_change_rate=0.004, owner_swap_rate=0.0015, lost_phone_share=0.4,
        activation_rate=0.001, port_out_rate=0.0004,
        fraud_intensity={name: 1.0 for name in catalog.SCENARIOS})


# Syllables for brand-like sender ids: pronounceable, capitalised, sometimes with a suffix.
_SYLLABLES: Final[tuple[str, ...]] = (
    "ka", "lo", "mi", "ver", "zo", "tra", "bel", "fin", "no", "ra", "post", "shop", "pak", "ex", "sen", "do",
    "win", "mar", "ti", "go", "lux", "van", "de", "net", "pay", "zorg", "bank", "kom", "ri", "ta")
_SUFFIXES: Final[tuple[str, ...]] = ("", "", "", ".nl", "NL", "24", "Pay", "Info", "Zorg", "Go")
# category, weight of the category in everyday A2P traffic, link share, sends one-time codes
_CATEGORIES: Final[tuple[tuple[str, float, float, bool], ...]] = (
    ("bank", 0.30, 0.0, True), ("government", 0.08, 0.0, True), ("parcel", 0.25, 0.9, False),
    ("retail", 0.15, 0.7, False), ("operator", 0.07, 0.2, False), ("service", 0.10, 0.3, False),
    ("marketing", 0.05, 0.8, False),
)


def _brand(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        name = "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), int(rng.integers(2, 4))))
        style = rng.random()
        name = name.upper() if style < 0.25 else (name.capitalize() if style < 0.85 else name)
        name = (name + _SUFFIXES[int(rng.integers(0, len(_SUFFIXES)))])[:11]
        if rng.random() < 0.1:  # a digit inside, as in many real ids
            name = name[:-1] + str(int(rng.integers(0, 10)))
        if name.isdigit() or name in used or len(name) < 3:
            continue
        used.add(name)
        return name


def _draw_senders(rng: np.random.Generator) -> tuple[A2PSender, ...]:
    lo, hi = RANGES["a2p_alphanumeric"]
    n_alpha = int(rng.integers(int(lo), int(hi) + 1))
    lo, hi = RANGES["a2p_short_codes"]
    n_short = int(rng.integers(int(lo), int(hi) + 1))
    used: set[str] = set()
    cat_names = [c[0] for c in _CATEGORIES]
    cat_weight = np.asarray([c[1] for c in _CATEGORIES])
    out: list[A2PSender] = []
    # every world has at least one OTP sender (bank) and one parcel sender
    drawn = rng.choice(len(cat_names), size=n_alpha + n_short - 2, p=cat_weight / cat_weight.sum())
    cats = ["bank", "parcel"] + [cat_names[int(i)] for i in drawn]
    for i, cat in enumerate(cats):
        spec = next(c for c in _CATEGORIES if c[0] == cat)
        if i < n_alpha:
            name = _brand(rng, used)
        else:
            while True:
                name = str(int(rng.integers(1000, 10000)) if rng.random() < 0.8 else int(rng.integers(10000, 100000)))
                if name not in used:
                    used.add(name)
                    break
        weight = float(rng.lognormal(0.0, 0.8)) * spec[1]
        url = float(min(1.0, max(0.0, spec[2] + rng.uniform(-0.1, 0.1)))) if spec[2] > 0 else 0.0
        out.append(A2PSender(name, cat, weight, url, spec[3]))
    return tuple(out)


def _u(rng: np.random.Generator, name: str) -> float:
    lo, hi = RANGES[name]
    return float(rng.uniform(lo, hi))


def _int_range(rng: np.random.Generator, name: str) -> tuple[int, int]:
    """A sub-range [a, b] of an integer range (the world's businesses vary inside it)."""
    lo, hi = (int(v) for v in RANGES[name])
    a, b = sorted(int(v) for v in rng.integers(lo, hi + 1, 2))
    return a, max(b, a + 1)


def random_world(seed: int) -> WorldParams:
    rng = np.random.default_rng([seed, 999])
    shares = rng.dirichlet(np.asarray([op[2] for op in catalog.DUTCH_OPERATORS]) * 20)
    mobile_prefixes = [p for p in catalog.FOREIGN_PREFIXES if p[0][-1] in "56789"]
    k = int(rng.integers(2, len(mobile_prefixes) + 1))
    chosen = sorted(rng.choice(len(mobile_prefixes), k, replace=False))
    visitor_prefixes = tuple(mobile_prefixes[int(i)] for i in chosen)
    return WorldParams(
        kind="random", seed=seed, operator_shares=tuple(float(s) for s in shares),
        roaming_share=_u(rng, "roaming_share"), dual_sim_share=_u(rng, "dual_sim_share"),
        visitor_share=_u(rng, "visitor_share"), visitor_prefixes=visitor_prefixes,
        contacts_mean=_u(rng, "contacts_mean"), sms_per_day_mean=_u(rng, "sms_per_day_mean"),
        calls_per_day_mean=_u(rng, "calls_per_day_mean"), stranger_share=_u(rng, "stranger_share"),
        sms_reply_share=_u(rng, "sms_reply_share"), a2p_per_day=_u(rng, "a2p_per_day"),
        a2p_senders=_draw_senders(rng),
        marketing_bursts_per_100k_day=_u(rng, "marketing_bursts_per_100k_day"),
        marketing_burst_share=_u(rng, "marketing_burst_share"),
        marketing_burst_minutes=_u(rng, "marketing_burst_minutes"),
        call_centres_per_100k=_u(rng, "call_centres_per_100k"),
        call_centre_agents=_int_range(rng, "call_centre_agents"),
        call_centre_calls_per_agent_day=_u(rng, "call_centre_calls_per_agent_day"),
        call_centre_answered=_u(rng, "call_centre_answered"), call_centre_median_s=_u(rng, "call_centre_median_s"),
        bulk_phones_per_100k=_u(rng, "bulk_phones_per_100k"),
        modem_businesses_per_100k=_u(rng, "modem_businesses_per_100k"),
        modem_reminders_per_day=_u(rng, "modem_reminders_per_day"), modem_reply_share=_u(rng, "modem_reply_share"),
        iot_fleets_per_100k=_u(rng, "iot_fleets_per_100k"), iot_fleet_size=_int_range(rng, "iot_fleet_size"),
        iot_reports_per_sim_day=_u(rng, "iot_reports_per_sim_day"),
        group_chats_per_100k=_u(rng, "group_chats_per_100k"),
        group_organisers_per_100k=_u(rng, "group_organisers_per_100k"),
        group_organiser_members=_int_range(rng, "group_organiser_members"),
        family_phone_share=_u(rng, "family_phone_share"), device_change_rate=_u(rng, "device_change_rate"),
        owner_swap_rate=_u(rng, "owner_swap_rate"), lost_phone_share=_u(rng, "lost_phone_share"),
        activation_rate=_u(rng, "activation_rate"), port_out_rate=_u(rng, "port_out_rate"),
        fraud_intensity={name: _u(rng, "fraud_intensity") for name in catalog.SCENARIOS},
        **{name: _u(rng, name) for name in _LATER})


# parameters added to RANGES later, drawn in this order after the others
_LATER: Final[tuple[str, ...]] = ("takeover_new_device_share", "takeover_first_act_minutes", "takeover_codes_share",
                                  "takeover_link_share", "takeover_contact_share", "traveller_share",
                                  "lost_away_share", "takeover_forwarding_share")


def world_params(kind: str, seed: int) -> WorldParams:
    if kind == "fixed":
        return fixed_world(seed)
    if kind == "random":
        return random_world(seed)
    raise ValueError(f"world {kind!r}: use one of {', '.join(WORLDS)}")


def per_100k(rng: np.random.Generator, rate: float, n_subs: int, days: float = 1.0) -> int:
    """How many of a class a world of ``n_subs`` has: Poisson around ``rate`` per 100k, at least one."""
    if rate <= 0:
        return 0
    return max(1, int(rng.poisson(rate * n_subs / 100_000 * days)))

