"""The authorization matrix: every route x every partner type (+ no token), and every object
route x another partner's objects. Each cell has its expected status; no cell may leak data."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiServer

pytestmark = pytest.mark.kafka

PHONE = "+31612340001"
TYPES = ["bank-a", "platform-a", "telco-a", "operator-a"]
ALL = {t: True for t in TYPES}
NO_SUCH = "00000000-0000-4000-8000-000000000000"
ONLY = lambda *ts: {t: t in ts for t in TYPES}  # noqa: E731

# (method, path, body, who may, success status)
ROUTES: list[tuple[str, str, dict[str, Any] | None, dict[str, bool], int]] = [
    ("POST", "/v1/risk/numbers:lookup", {"phoneNumber": PHONE}, ALL, 200),
    ("POST", "/v1/risk/numbers:batch", {"phoneNumbers": [PHONE]}, ALL, 200),
    ("POST", "/v1/risk/devices:lookup", {"imei": "35209900176148"}, ONLY("telco-a", "operator-a"), 200),
    ("GET", "/v1/alerts?limit=5", None, ALL, 200),
    ("GET", "/v1/alerts:stream?max_seconds=1", None, ALL, 200),
    (
        "POST",
        "/v1/watchlist/entries",
        {"phoneNumber": PHONE, "reference": "cust-1"},
        ONLY("bank-a", "operator-a"),
        201,
    ),
    ("GET", "/v1/watchlist/entries", None, ONLY("bank-a", "operator-a"), 200),
    ("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["alert.raised"]}, ALL, 201),
    ("GET", "/v1/webhooks", None, ALL, 200),
    ("POST", "/v1/reports", {"phoneNumber": PHONE, "label": "confirmed_fraud"}, ALL, 202),
    ("POST", "/v1/contests", {"phoneNumber": PHONE, "reason": "our customer, verified"}, ALL, 201),
    ("GET", "/v1/contests", None, ALL, 200),
    (
        "POST",
        "/v1/overrides",
        {"phoneNumber": PHONE, "action": "pin", "level": "low", "reason": "matrix test", "expiresInHours": 1},
        ONLY("operator-a"),
        201,
    ),
    ("GET", "/v1/overrides", None, ONLY("operator-a"), 200),
    ("POST", "/v1/audit:query", {"phoneNumber": PHONE}, ONLY("operator-a"), 200),
    ("POST", "/v1/call-state:check", {"phoneNumber": PHONE}, ONLY("bank-a", "operator-a"), 200),
    # past authorization: the calling number is not registered to the partner (no protected numbers here)
    (
        "POST",
        "/verified-caller/v0.1/pre-announce",
        {"callingParticipant": "+31201110001", "calledParticipant": PHONE},
        ONLY("bank-a", "operator-a"),
        403,
    ),
    ("POST", "/sim-swap/v2/check", {"phoneNumber": PHONE, "maxAge": 24}, ONLY("telco-a", "operator-a"), 200),
    ("POST", "/sim-swap/v2/retrieve-date", {"phoneNumber": PHONE}, ONLY("telco-a", "operator-a"), 200),
    (
        "POST",
        "/device-swap/v1/check",
        {"phoneNumber": PHONE, "maxAge": 24},
        ONLY("telco-a", "operator-a"),
        422,  # past authorization: PHONE has no records, Device Swap's SERVICE_NOT_APPLICABLE
    ),
    ("POST", "/device-swap/v1/retrieve-date", {"phoneNumber": PHONE}, ONLY("telco-a", "operator-a"), 422),
    (
        "POST",
        "/sim-swap-subscriptions/v0.3/subscriptions",
        {
            "protocol": "HTTP",
            "sink": "http://127.0.0.1:9/sink",
            "types": ["org.camaraproject.sim-swap-subscriptions.v0.swapped"],
            "config": {"subscriptionDetail": {"phoneNumber": PHONE}},
        },
        ONLY("telco-a", "operator-a"),
        201,
    ),
    ("GET", "/sim-swap-subscriptions/v0.3/subscriptions", None, ONLY("telco-a", "operator-a"), 200),
    ("POST", "/call-forwarding-signal/v0.4/unconditional-call-forwardings", {"phoneNumber": PHONE},
     ONLY("telco-a", "operator-a"), 200),
    ("POST", "/call-forwarding-signal/v0.4/call-forwardings", {"phoneNumber": PHONE}, ONLY("telco-a", "operator-a"),
     200),
    # past authorization: PHONE has no records, KYC Tenure's SERVICE_NOT_APPLICABLE
    ("POST", "/kyc-tenure/v0.2/check-tenure", {"phoneNumber": PHONE, "tenureDate": "2024-01-01"},
     ONLY("telco-a", "operator-a"), 422),
    ("POST", "/number-recycling/v0.2/check", {"phoneNumber": PHONE, "specifiedDate": "2024-01-01"},
     ONLY("telco-a", "operator-a"), 200),
    # past authorization: no such subscription (of theirs)
    ("GET", f"/sim-swap-subscriptions/v0.3/subscriptions/{NO_SUCH}", None, ONLY("telco-a", "operator-a"), 404),
    ("DELETE", f"/sim-swap-subscriptions/v0.3/subscriptions/{NO_SUCH}", None, ONLY("telco-a", "operator-a"), 404),
]


def _call(
    c: httpx.Client, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> httpx.Response:
    return c.request(method, path, json=body, headers=headers)


def test_route_by_partner_type_matrix(api: ApiServer) -> None:
    cells: dict[tuple[str, str], tuple[int, int]] = {}
    with api.client() as c:
        for method, path, body, allowed, ok in ROUTES:
            r = _call(c, method, path, body, {})
            cells[(method + " " + path, "no-token")] = (r.status_code, 401)
            assert set(r.json()) == {"status", "code", "message"}
            for partner in TYPES:
                r = _call(c, method, path, body, api.auth(partner))
                expected = ok if allowed[partner] else 403
                cells[(method + " " + path, partner)] = (r.status_code, expected)
                if expected == 403:
                    assert r.json()["code"] == "PERMISSION_DENIED"
                    assert set(r.json()) == {"status", "code", "message"}
    wrong = {k: v for k, v in cells.items() if v[0] != v[1]}
    assert not wrong, f"matrix cells with unexpected status (got, expected): {wrong}"
    assert len(cells) == len(ROUTES) * (len(TYPES) + 1)


def test_a_scope_subset_token_is_limited_to_it(api: ApiServer) -> None:
    token = api.token("telco-a", scope="sim-swap:check")
    with api.client() as c:
        headers = {"Authorization": f"Bearer {token}"}
        assert c.post("/sim-swap/v2/check", json={"phoneNumber": PHONE}, headers=headers).status_code == 200
        assert (
            c.post("/sim-swap/v2/retrieve-date", json={"phoneNumber": PHONE}, headers=headers).status_code
            == 403
        )
        assert (
            c.post("/v1/risk/numbers:lookup", json={"phoneNumber": PHONE}, headers=headers).status_code == 403
        )


def test_subscription_scopes_are_separate(api: ApiServer) -> None:
    """A read-only token lists subscriptions but may neither create nor delete one."""
    token = api.token("telco-a", scope="sim-swap-subscriptions:read")
    headers = {"Authorization": f"Bearer {token}"}
    base = "/sim-swap-subscriptions/v0.3/subscriptions"
    body = next(route[2] for route in ROUTES if route[:2] == ("POST", base))
    with api.client() as c:
        assert c.get(base, headers=headers).status_code == 200
        assert c.post(base, json=body, headers=headers).status_code == 403
        assert c.delete(f"{base}/{NO_SUCH}", headers=headers).status_code == 403
        create = {"Authorization": "Bearer " + api.token("telco-a", scope=ROUTES_CREATE_SCOPE)}
        assert c.post(base, json=body, headers=create).status_code == 201
        assert c.get(base, headers=create).status_code == 403


ROUTES_CREATE_SCOPE = "sim-swap-subscriptions:org.camaraproject.sim-swap-subscriptions.v0.swapped:create"


def test_other_partners_objects_are_invisible(api: ApiServer) -> None:
    with api.client() as c:
        a, b = api.auth("bank-a"), api.auth("bank-b")
        entry = c.post(
            "/v1/watchlist/entries",
            json={"phoneNumber": "+31612340002", "reference": "a-secret-ref"},
            headers=a,
        ).json()
        hook = c.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/a-private-hook", "events": ["risk.changed"]},
            headers=a,
        ).json()
        contest = c.post(
            "/v1/contests", json={"phoneNumber": "+31612340002", "reason": "bank a contests"}, headers=a
        ).json()
        cells = {
            "get entry": c.get(f"/v1/watchlist/entries/{entry['id']}", headers=b).status_code,
            "delete entry": c.delete(f"/v1/watchlist/entries/{entry['id']}", headers=b).status_code,
            "get webhook": c.get(f"/v1/webhooks/{hook['id']}", headers=b).status_code,
            "delete webhook": c.delete(f"/v1/webhooks/{hook['id']}", headers=b).status_code,
            "resolve contest": c.post(
                f"/v1/contests/{contest['id']}:resolve",
                json={"decision": "upheld", "resolution": "no"},
                headers=b,
            ).status_code,
        }
        assert cells == {
            "get entry": 404,
            "delete entry": 404,
            "get webhook": 404,
            "delete webhook": 404,
            "resolve contest": 403,
        }
        listings = (
            c.get("/v1/watchlist/entries", headers=b).text
            + c.get("/v1/webhooks", headers=b).text
            + c.get("/v1/contests", headers=b).text
        )
        for secret in (
            entry["id"],
            "a-secret-ref",
            hook["id"],
            "a-private-hook",
            contest["id"],
            "bank a contests",
        ):
            assert secret not in listings
        # the owner still has them, and an unknown id answers exactly like another's
        assert c.get(f"/v1/watchlist/entries/{entry['id']}", headers=a).status_code == 200
        assert c.get(f"/v1/webhooks/{hook['id']}", headers=a).status_code == 200
        unknown = c.get("/v1/webhooks/wh_AAAAAAAAAAAAAAAAAAAAAAAA", headers=b)
        other = c.get(f"/v1/webhooks/{hook['id']}", headers=b)
        assert unknown.json() == other.json()
        # the operator sees the contest and may resolve it
        ops = api.auth("operator-a")
        assert contest["id"] in c.get("/v1/contests", headers=ops).text
        assert c.delete(f"/v1/webhooks/{hook['id']}", headers=a).status_code == 204
