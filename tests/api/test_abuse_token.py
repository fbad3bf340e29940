"""Issue #21, items 2 and 3: the token endpoint authenticates before it charges a partner, and
failed attempts (known or unknown client ids) are limited per source address and per client id
in buckets of their own, at a constant cost. Attackers come from other loopback addresses than
the partner; the API is served as in production (no forwarded headers from untrusted peers)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.api.abuse_support import LOCK_QUOTA, client_from, guarded_api, token_request
from tests.api.conftest import SECRETS, ApiServer

pytestmark = pytest.mark.kafka
BURST = 10


@pytest.fixture(scope="module")
def guarded(kafka_bootstrap: str, api_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with guarded_api(
        tmp_path_factory.mktemp("abuse-token"),
        kafka_bootstrap,
        api_prefix,
        auth_failures_burst=BURST,
        auth_failures_per_minute=0.01,  # no refill within the test
    ) as server:
        yield server


@pytest.fixture()
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts real scrypt computations in this process (the API's server thread included)."""
    calls: list[int] = []
    real: Callable[..., bytes] = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


def test_wrong_secrets_never_lock_the_partner_out(guarded: ApiServer) -> None:
    api = guarded
    secret = SECRETS["bank-lock"]
    with client_from(api, "127.0.0.1") as partner, client_from(api, "127.0.0.2") as attacker:
        assert token_request(partner, "bank-lock", secret).status_code == 200
        answers = [
            token_request(attacker, "bank-lock", f"guess-{i}-0123456789").status_code for i in range(LOCK_QUOTA + 5)
        ]
        # failures are limited in their own bucket: 401 while it lasts, then 429 (TOO_MANY_REQUESTS)
        assert answers[:BURST] == [401] * BURST and set(answers[BURST:]) == {429}
        refused = token_request(attacker, "bank-lock", "guess-x-0123456789")
        assert refused.json()["code"] == "TOO_MANY_REQUESTS" and refused.json()["error"] == "slow_down"
        assert int(refused.headers["retry-after"]) >= 1
        # the partner, from where it always comes, still gets tokens and its whole quota
        r = token_request(partner, "bank-lock", secret)
        assert r.status_code == 200, r.text
        headers = {"Authorization": "Bearer " + r.json()["access_token"]}
        answered = [
            partner.post(
                "/v1/risk/numbers:lookup", json={"phoneNumber": f"+3162100{i:04d}"}, headers=headers
            ).status_code
            for i in range(LOCK_QUOTA - 3)
        ]
        assert set(answered) == {200}


def test_many_addresses_exhaust_the_client_bucket_but_not_the_partner(guarded: ApiServer) -> None:
    api = guarded
    secret = SECRETS["bank-feedback"]
    with client_from(api, "127.0.0.1") as partner:
        assert token_request(partner, "bank-feedback", secret).status_code == 200
    for n in range(BURST):  # one failure from each of ten addresses
        with client_from(api, f"127.0.1.{n + 1}") as attacker:
            assert token_request(attacker, "bank-feedback", "wrong-wrong-wrong-wrong").status_code == 401
    with client_from(api, "127.0.1.200") as fresh:
        assert token_request(fresh, "bank-feedback", "wrong-wrong-wrong-wrong").status_code == 429
    with client_from(api, "127.0.0.1") as partner:
        assert token_request(partner, "bank-feedback", secret).status_code == 200


def test_unknown_client_ids_are_limited_at_constant_cost(guarded: ApiServer, scrypt_calls: list[int]) -> None:
    api = guarded
    with client_from(api, "127.0.0.3") as attacker:
        known = token_request(attacker, "bank-a", "not-the-secret-0123456789")
        unknown = token_request(attacker, "no-such-client", "not-the-secret-0123456789")
        # the same answer for a known id with a wrong secret and an unknown id
        assert known.status_code == unknown.status_code == 401
        assert known.json() == unknown.json()
        assert known.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")
        for _ in range(BURST - 2):
            assert token_request(attacker, f"x-{uuid.uuid4().hex[:12]}", "guess-0123456789").status_code == 401
        spent = len(scrypt_calls)
        assert spent == 1  # the known id's wrong secret; unknown ids are never hashed
        later = [token_request(attacker, f"x-{uuid.uuid4().hex[:12]}", "guess-0123456789") for _ in range(40)]
        assert {r.status_code for r in later} == {429}
        assert len(scrypt_calls) == spent  # refused without any scrypt
    # forwarded headers from an untrusted peer change nothing: still the same (limited) address
    with client_from(api, "127.0.0.3") as attacker:
        spoofed = attacker.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("bank-a", "not-the-secret-0123456789"),
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert spoofed.status_code == 429


def test_client_authentication_errors_are_uniform(guarded: ApiServer) -> None:
    api = guarded
    with client_from(api, "127.0.0.5") as c:
        bodies = []
        for form in (
            {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "x.y.z",
            },
            {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "eyJhbGciOiJub25lIn0.eyJpc3MiOiJiYW5rLWEifQ.",
            },
            {"client_id": "bank-a", "client_secret": "nope-nope-nope-nope"},
            {"client_id": "nobody-here", "client_secret": "nope-nope-nope-nope"},
        ):
            r = c.post("/oauth2/token", data={"grant_type": "client_credentials", **form})
            assert r.status_code == 401, r.text
            bodies.append(r.json())
    assert all(b == bodies[0] for b in bodies), bodies
    assert bodies[0]["error_description"] == "client authentication failed"


def test_failures_at_a_shared_address_do_not_lock_out_the_partner_there(guarded: ApiServer) -> None:
    """A partner behind a NAT it shares with an attacker: the address's bucket empties, the
    partner (which authenticated from there before) still gets its tokens."""
    api = guarded
    with client_from(api, "127.0.0.6") as shared:
        assert token_request(shared, "bank-w", SECRETS["bank-w"]).status_code == 200
        guesses = [
            token_request(shared, f"x-{uuid.uuid4().hex[:12]}", "guess-0123456789").status_code
            for _ in range(BURST + 2)
        ]
        assert guesses == [401] * BURST + [429, 429]
        assert token_request(shared, "bank-w", SECRETS["bank-w"]).status_code == 200
