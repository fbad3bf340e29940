"""Shared reference data: operators, A2P senders, do-not-originate bank numbers, device models.

The scorer's policy imports ``DO_NOT_ORIGINATE`` and the A2P allow-list from here, so the
simulator and the detector agree on one list. Everything here is public-looking reference data
(operator codes, published bank service numbers in the reserved 555 range, sender ids), not
subscriber data.
"""

from __future__ import annotations

from typing import Final

# --- scenarios (exact names; keys of metrics.json "scenarios") ------------------------------
SCENARIOS: Final[tuple[str, ...]] = (
    "sms_farm",
    "sim_farm_device",
    "sim_box",
    "sim_swap_takeover",
    "wangiri",
    "spoofed_bank_caller",
    "slow_low_farm",
)

# --- do-not-originate list -------------------------------------------------------------------
# Published inbound-only bank numbers: customers call them, they never place calls. A call
# presenting one of them as caller id is spoofed (the telecom "DNO" list).
DO_NOT_ORIGINATE: Final[frozenset[str]] = frozenset({
    "+31205550100",
    "+31305550111",
    "+31885550122",
    "+31205550133",
    "+31105550144",
})
# Stable order for deterministic use in the simulator.
BANK_NUMBERS: Final[tuple[str, ...]] = tuple(sorted(DO_NOT_ORIGINATE))

# --- A2P senders (legitimately high volume; allow-listed in the scorer policy) ----------------
A2P_ALPHANUMERIC: Final[tuple[str, ...]] = ("ING", "Rabobank", "ABNAMRO", "PostNL", "DHL", "bol.com", "DigiD", "KPN")
A2P_SHORT_CODES: Final[tuple[str, ...]] = ("3010", "4004", "5858")
A2P_SENDERS: Final[frozenset[str]] = frozenset(A2P_ALPHANUMERIC + A2P_SHORT_CODES)
# Senders whose messages carry a link (parcel tracking, shop): legitimate URL SMS at volume.
A2P_URL_SENDERS: Final[frozenset[str]] = frozenset({"PostNL", "DHL", "bol.com", "5858"})
# Senders of one-time codes (OTP): fraud rings receive these on farmed SIMs.
A2P_OTP_SENDERS: Final[tuple[str, ...]] = ("ING", "Rabobank", "ABNAMRO", "DigiD", "3010", "4004")

# --- operators ----------------------------------------------------------------------------------
# name, MCC+MNC values of its IMSIs, market share of simulated subscribers, timestamp style
# ("local" = Europe/Amsterdam offset, "utc" = Z), share of national-format numbers it reports,
# share of IMEISV (16 digits) it reports.
DUTCH_OPERATORS: Final[tuple[tuple[str, tuple[str, ...], float, str, float, float], ...]] = (
    ("kpn", ("20408", "20410"), 0.38, "local", 0.00, 0.00),
    ("vodafoneziggo", ("20404",), 0.32, "utc", 0.00, 0.35),
    ("odido", ("20416", "20420"), 0.30, "local", 0.12, 0.00),
)
# The foreign roaming partner reports traffic of its own subscribers visiting the Netherlands.
ROAMING_PARTNER: Final[str] = "telekom-de"
ROAMING_PARTNER_MCCMNC: Final[str] = "26201"
OPERATORS: Final[tuple[str, ...]] = (*(op[0] for op in DUTCH_OPERATORS), ROAMING_PARTNER)

# Networks abroad where Dutch subscribers roam (MCC+MNC of the visited cell).
VISITED_NETWORKS: Final[tuple[str, ...]] = ("21401", "20801", "26201", "23415", "22201", "20601")

# International destinations of normal traffic (country code, digits after it).
FOREIGN_PREFIXES: Final[tuple[tuple[str, int], ...]] = (
    ("+4915", 9), ("+4917", 9), ("+324", 8), ("+447", 9), ("+336", 8), ("+485", 8),
    ("+905", 9), ("+2126", 8), ("+5978", 6),
)
# Premium / high-cost destinations used by wangiri callers (Tunisia, Sierra Leone, satellite...).
WANGIRI_PREFIXES: Final[tuple[tuple[str, int], ...]] = (
    ("+2162", 7), ("+23276", 6), ("+8823", 8), ("+3706", 7), ("+22507", 8),
)
# Dutch landline / business prefixes (Amsterdam, Rotterdam, Utrecht, company numbers 088).
LANDLINE_PREFIXES: Final[tuple[str, ...]] = ("+3120", "+3110", "+3130", "+3188", "+3170", "+3140")

# --- devices --------------------------------------------------------------------------------------
# Type Allocation Codes (first 8 IMEI digits, they name a device model). Phones for normal
# subscribers; modem/IoT-style TACs for farm hardware (GSM gateways, modem pools).
PHONE_TACS: Final[tuple[str, ...]] = (
    "35391110", "35332211", "35407115", "35290611", "35928011", "35676211", "35174510",
    "35884710", "35961310", "35298410", "35446609", "35912406", "86769203", "86890604",
    "35325807", "35719109",
)
MODEM_TACS: Final[tuple[str, ...]] = ("86101503", "86743603", "35807705", "86246005")
# M2M/IoT modules (trackers, meters, alarm panels).
IOT_TACS: Final[tuple[str, ...]] = ("35473009", "86360204", "35951010", "86652003")


def luhn_check_digit(body: str) -> str:
    """The IMEI check digit of a 14-digit body (Luhn, doubling every second digit from the left)."""
    total = 0
    for i, ch in enumerate(body):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)
