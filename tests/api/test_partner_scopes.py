"""Partner scopes: the type's ceiling, its defaults, and the CAMARA checks a bank may opt in to."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.api.partners import OPT_IN_SCOPES, TYPE_SCOPES, Partner, hash_secret

SECRET = hash_secret("s" * 24)
CAMARA_CHECKS = ["sim-swap:check", "call-forwarding-signal:call-forwardings:read", "kyc-tenure:check-tenure"]


def test_a_bank_without_a_scope_list_gets_no_camara_scope() -> None:
    bank = Partner(id="bank-x", type="bank", client_secret_hash=SECRET)
    assert bank.granted == TYPE_SCOPES["bank"]
    assert not bank.granted & OPT_IN_SCOPES["bank"]


def test_a_bank_may_list_the_payment_time_camara_checks() -> None:
    bank = Partner(id="bank-x", type="bank", client_secret_hash=SECRET,
                   scopes=frozenset({"risk:numbers", *CAMARA_CHECKS, "number-recycling:check"}))
    assert set(CAMARA_CHECKS) <= bank.granted


@pytest.mark.parametrize(("kind", "scope"), [
    ("bank", "device-swap:check"),                       # not a bank's, even opted in
    ("bank", "sim-swap-subscriptions:read"),
    ("platform", "kyc-tenure:check-tenure"),             # opt-in is the bank's only
])
def test_scopes_beyond_the_type_are_refused(kind: str, scope: str) -> None:
    with pytest.raises(ValidationError, match="may not have scopes"):
        Partner(id="p-x", type=kind, client_secret_hash=SECRET, scopes=frozenset({scope}))  # type: ignore[arg-type]
