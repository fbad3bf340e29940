"""The shared reference lists: well-formed, and the same lists the scorer's policy uses."""

from __future__ import annotations

from pathlib import Path

import phonenumbers
import yaml

from services.common.normalise import normalise_number
from services.devtools.simulator import catalog
from services.scorer import registry

POLICY = Path(__file__).resolve().parents[3] / "services/scorer/policy.yaml"


def test_do_not_originate_numbers_are_dutch_e164() -> None:
    assert len(catalog.DO_NOT_ORIGINATE) == 5
    for number in catalog.DO_NOT_ORIGINATE:
        assert normalise_number(number).value == number
        assert phonenumbers.region_code_for_number(phonenumbers.parse(number)) == "NL"


def test_a2p_senders_normalise_as_alphanumeric_or_short_code() -> None:
    for sender in catalog.A2P_ALPHANUMERIC:
        assert len(sender) <= 11
        assert normalise_number(sender, allow_alphanumeric=True).kind == "alphanumeric"
    for code in catalog.A2P_SHORT_CODES:
        assert normalise_number(code).kind == "short_code"


def test_luhn() -> None:
    assert catalog.luhn_check_digit("49015420323751") == "8"   # the classic IMEI example


def test_scorer_policy_uses_the_same_lists() -> None:
    # every key read unconditionally: a renamed or missing list fails (KeyError), never passes
    policy = yaml.safe_load(POLICY.read_text())
    assert set(policy["do_not_originate"]) == set(catalog.DO_NOT_ORIGINATE)
    # the fixed world's A2P senders are registered in the packaged sender-ID registry
    registered = {s.sender_id for s in registry.load(POLICY.parent / "sender_registry.csv")}
    assert set(catalog.A2P_SENDERS) <= registered
