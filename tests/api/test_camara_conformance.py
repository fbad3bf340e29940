"""CAMARA SIM Swap 2.1.0 / Device Swap 1.0.0 conformance cases the official test definitions
check and the first version answered wrongly: ``maxAge`` above the schema maximum, numbers that
are impossible in the numbering plan, and Device Swap for a number the records do not hold.
Every answer is validated against the spec's own response schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import ApiServer, ScorerOutput, eventually, iso
from tests.api.test_camara_integration import _error_validator, _spec

pytestmark = pytest.mark.kafka

APIS = [
    ("camara-sim-swap-v2.1.0.yaml", "/sim-swap/v2", "sim_changed_at"),
    ("camara-device-swap-v1.0.0.yaml", "/device-swap/v1", "device_changed_at"),
]
KNOWN = "+31612349001"
UNKNOWN = "+31612349999"  # possible, never seen


@pytest.fixture()
def known(api: ApiServer, scorer: ScorerOutput) -> None:
    at = iso(datetime.now(UTC) - timedelta(hours=5))
    scorer.risk(KNOWN, level="none", score=0, sim_changed_at=at, device_changed_at=at)
    scorer.flush()
    eventually(lambda: api.service.risk.get("number:" + api.pseudonym(KNOWN)))


@pytest.mark.parametrize(("spec_file", "prefix", "field"), APIS)
@pytest.mark.parametrize("max_age", [2401, 100000, 721])
def test_max_age_above_any_maximum_is_out_of_range(
    api: ApiServer, known: None, spec_file: str, prefix: str, field: str, max_age: int
) -> None:
    spec = _spec(spec_file)
    with api.client() as c:
        r = c.post(f"{prefix}/check", json={"phoneNumber": KNOWN, "maxAge": max_age}, headers=api.auth("telco-a"))
    assert (r.status_code, r.json()["code"]) == (400, "OUT_OF_RANGE"), r.text
    _error_validator(spec, "Generic400Check" if "device" in prefix else "Generic400").validate(r.json())


@pytest.mark.parametrize(("spec_file", "prefix", "field"), APIS)
@pytest.mark.parametrize("max_age", [0, -3, "24", 2.5])
def test_max_age_that_breaks_the_schema_is_an_invalid_argument(
    api: ApiServer, spec_file: str, prefix: str, field: str, max_age: object
) -> None:
    with api.client() as c:
        r = c.post(f"{prefix}/check", json={"phoneNumber": KNOWN, "maxAge": max_age}, headers=api.auth("telco-a"))
    assert (r.status_code, r.json()["code"]) == (400, "INVALID_ARGUMENT"), r.text


@pytest.mark.parametrize(("spec_file", "prefix", "field"), APIS)
@pytest.mark.parametrize("operation", ["check", "retrieve-date"])
@pytest.mark.parametrize("number", ["+99912345678", "+316123", "+316123456789012"])
def test_a_number_impossible_in_the_numbering_plan_is_not_found(
    api: ApiServer, spec_file: str, prefix: str, field: str, operation: str, number: str
) -> None:
    spec = _spec(spec_file)
    with api.client() as c:
        r = c.post(f"{prefix}/{operation}", json={"phoneNumber": number}, headers=api.auth("telco-a"))
    assert (r.status_code, r.json()["code"]) == (404, "IDENTIFIER_NOT_FOUND"), r.text
    _error_validator(spec, "Generic404").validate(r.json())


@pytest.mark.parametrize("operation", ["check", "retrieve-date"])
def test_device_swap_for_a_number_without_records_is_not_applicable(
    api: ApiServer, known: None, operation: str
) -> None:
    spec = _spec("camara-device-swap-v1.0.0.yaml")
    with api.client() as c:
        r = c.post(f"/device-swap/v1/{operation}", json={"phoneNumber": UNKNOWN}, headers=api.auth("telco-a"))
        assert (r.status_code, r.json()["code"]) == (422, "SERVICE_NOT_APPLICABLE"), r.text
        _error_validator(spec, "Generic422").validate(r.json())
        # a number with records is answered as before
        r = c.post(f"/device-swap/v1/{operation}", json={"phoneNumber": KNOWN}, headers=api.auth("telco-a"))
        assert r.status_code == 200, r.text


def test_sim_swap_for_a_number_without_records_is_no_change_in_the_monitored_period(
    api: ApiServer, known: None
) -> None:
    with api.client() as c:
        r = c.post("/sim-swap/v2/check", json={"phoneNumber": UNKNOWN}, headers=api.auth("telco-a"))
        assert (r.status_code, r.json()) == (200, {"swapped": False})
        r = c.post("/sim-swap/v2/retrieve-date", json={"phoneNumber": UNKNOWN}, headers=api.auth("telco-a"))
        assert (r.status_code, r.json()) == (200, {"latestSimChange": None, "monitoredPeriod": 30})
