"""Issue #21, item 1: the watch-list is a lookup. Entries spend the hourly budget of distinct
numbers (one per entry), are audited, and a watch-list shows only alerts raised after its
entry was added (real broker, the API served as in production)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.abuse_support import WATCH_BUDGET, guarded_api, wait_alert
from tests.api.conftest import ApiServer, ScorerOutput, eventually

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def guarded(kafka_bootstrap: str, api_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with guarded_api(tmp_path_factory.mktemp("abuse-watch"), kafka_bootstrap, api_prefix) as server:
        yield server


def test_watchlist_entries_spend_the_lookup_budget(guarded: ApiServer) -> None:
    api = guarded
    bank = api.auth("bank-w")
    with api.client() as c:
        for i in range(WATCH_BUDGET):
            r = c.post("/v1/watchlist/entries", json={"phoneNumber": f"+3162000{i:04d}"}, headers=bank)
            assert r.status_code == 201, r.text
        # the same number again within the hour is not a new number: idempotent, free
        again = c.post("/v1/watchlist/entries", json={"phoneNumber": "+31620000000"}, headers=bank)
        assert again.status_code == 201, again.text
        # the budget is spent: one more number, by watch-list or by lookup, is refused
        more = c.post("/v1/watchlist/entries", json={"phoneNumber": "+31620009999"}, headers=bank)
        assert more.status_code == 429, more.text
        assert more.json()["code"] == "QUOTA_EXCEEDED" and int(more.headers["retry-after"]) >= 1
        lookup = c.post("/v1/risk/numbers:lookup", json={"phoneNumber": "+31620009998"}, headers=bank)
        assert lookup.status_code == 429
        listed = c.get("/v1/watchlist/entries", headers=bank).json()["entries"]
        assert len(listed) == WATCH_BUDGET


def test_watchlist_entries_are_audited(guarded: ApiServer) -> None:
    api = guarded
    phone = "+31620100001"
    with api.client() as c:
        assert (
            c.post("/v1/watchlist/entries", json={"phoneNumber": phone}, headers=api.auth("bank-a")).status_code == 201
        )

        def records() -> list[dict[str, str]]:
            r = c.post("/v1/audit:query", json={"phoneNumber": phone}, headers=api.auth("operator-a"))
            assert r.status_code == 200, r.text
            return [x for x in r.json()["records"] if x["partner"] == "bank-a"]

        mine = eventually(records, timeout_s=20, interval_s=0.3)
    assert [x["action"] for x in mine] == ["watchlist:add"]
    assert mine[0]["purpose"] == "dpv:FraudPreventionAndDetection"


def test_watchlist_shows_only_alerts_raised_after_the_entry(guarded: ApiServer, scorer: ScorerOutput) -> None:
    api = guarded
    phone = "+31620200001"
    with api.client() as c:
        start = c.get("/v1/alerts", params={"limit": 500}, headers=api.auth("telco-a")).json()["nextCursor"]
        old = scorer.alert(phone, level="high")
        scorer.flush()
        wait_alert(api, start, old.alert_id)
        bank, operator = api.auth("bank-a"), api.auth("operator-a")
        entry = c.post("/v1/watchlist/entries", json={"phoneNumber": phone}, headers=bank).json()
        op_entry = c.post("/v1/watchlist/entries", json={"phoneNumber": phone}, headers=operator).json()
        # the bank (entitlement: its watch-list) does not get the alert raised before its entry
        page = c.get("/v1/alerts", params={"cursor": start}, headers=bank).json()
        assert old.alert_id not in [a["alertId"] for a in page["alerts"]]
        # the operator (entitlement: all) sees the alert, but no watchIds tie it to the new entry
        op_page = c.get("/v1/alerts", params={"cursor": start, "limit": 500}, headers=operator).json()
        seen = next(a for a in op_page["alerts"] if a["alertId"] == old.alert_id)
        assert "watchIds" not in seen
        # an alert raised after the entry shows, with the entry's id
        new = scorer.alert(phone, level="high")
        scorer.flush()
        wait_alert(api, start, new.alert_id)
        page = c.get("/v1/alerts", params={"cursor": start}, headers=bank).json()
        assert [a["alertId"] for a in page["alerts"]] == [new.alert_id]
        assert page["alerts"][0]["watchIds"] == [entry["id"]]
        op_page = c.get("/v1/alerts", params={"cursor": start, "limit": 500}, headers=operator).json()
        assert next(a for a in op_page["alerts"] if a["alertId"] == new.alert_id)["watchIds"] == [op_entry["id"]]
