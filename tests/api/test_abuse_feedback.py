"""Issue #21, item 4: reports and contests only on subjects the partner had to do with, alert ids
that exist in its own feed, per-partner daily caps, audited; contests listed in pages (real
broker, the API served as in production)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, TopicPartition

from services.common.records import decode_audit, decode_feedback
from services.common.topics import AUDIT, FEEDBACK
from tests.api.abuse_support import guarded_api, wait_alert
from tests.api.conftest import ApiServer, ScorerOutput, eventually

pytestmark = pytest.mark.kafka
REPORTS_PER_DAY, CONTESTS_PER_DAY = 6, 4


@pytest.fixture(scope="module")
def guarded(kafka_bootstrap: str, api_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with guarded_api(
        tmp_path_factory.mktemp("abuse-feedback"),
        kafka_bootstrap,
        api_prefix,
        reports_per_day=REPORTS_PER_DAY,
        contests_per_day=CONTESTS_PER_DAY,
    ) as server:
        yield server


def _topic(api: ApiServer, name: str) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=api.bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(api.prefix + name, p) for p in consumer.partitions_for_topic(api.prefix + name) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[bytes] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(r.value for r in records if r.value)
        return out
    finally:
        consumer.close()


def test_reports_need_a_lookup_or_an_alert_of_the_partner(guarded: ApiServer, scorer: ScorerOutput) -> None:
    api = guarded
    bank = api.auth("bank-feedback")
    never, looked, alerted = "+31622000001", "+31622000002", "+31622000003"
    with api.client() as c:
        r = c.post("/v1/reports", json={"phoneNumber": never, "label": "false_positive"}, headers=bank)
        assert r.status_code == 403, r.text
        made_up = c.post(
            "/v1/reports",
            json={"phoneNumber": never, "label": "false_positive", "alertId": "0123456789abcdef"},
            headers=bank,
        )
        assert made_up.status_code == 404, made_up.text
        assert c.post("/v1/risk/numbers:lookup", json={"phoneNumber": looked}, headers=bank).status_code == 200
        ok = c.post("/v1/reports", json={"phoneNumber": looked, "label": "false_positive"}, headers=bank)
        assert ok.status_code == 202, ok.text
        # an alert id of another partner's feed (bank-feedback does not watch the number) is refused
        start = c.get("/v1/alerts", params={"limit": 500}, headers=api.auth("telco-a")).json()["nextCursor"]
        alert = scorer.alert(alerted, level="high")
        scorer.flush()
        wait_alert(api, start, alert.alert_id)
        foreign = c.post(
            "/v1/reports",
            json={"phoneNumber": alerted, "label": "confirmed_fraud", "alertId": alert.alert_id},
            headers=bank,
        )
        assert foreign.status_code == 404, foreign.text
        # the telco that was shown the alert may report on it, by alert id
        telco = api.auth("telco-a")
        own = c.post(
            "/v1/reports",
            json={"phoneNumber": alerted, "label": "confirmed_fraud", "alertId": alert.alert_id},
            headers=telco,
        )
        assert own.status_code == 202, own.text
        # the alert id must be of the reported subject
        wrong_subject = c.post(
            "/v1/reports",
            json={"phoneNumber": looked, "label": "confirmed_fraud", "alertId": alert.alert_id},
            headers=telco,
        )
        assert wrong_subject.status_code == 404
    # only the two accepted reports reached the feedback topic, and both are audited
    entity_looked = "number:" + api.pseudonym(looked)

    def feedback() -> list[str] | None:
        got = [decode_feedback(v) for v in _topic(api, FEEDBACK)]
        mine = [f"{f.partner}:{f.entity_type}:{f.entity}" for f in got if f.partner in ("bank-feedback", "telco-a")]
        return mine if len(mine) >= 2 else None

    fed = eventually(feedback, timeout_s=20)
    assert sorted(fed) == sorted([f"bank-feedback:{entity_looked}", "telco-a:number:" + api.pseudonym(alerted)])
    audits = [decode_audit(v) for v in _topic(api, AUDIT)]
    reports = [a for a in audits if a.action.startswith("report:")]
    assert {(a.partner, a.action) for a in reports} == {
        ("bank-feedback", "report:false_positive"),
        ("telco-a", "report:confirmed_fraud"),
    }


def test_reports_and_contests_are_capped_per_day(guarded: ApiServer) -> None:
    api = guarded
    bank = api.auth("bank-a")
    phones = [f"+3162201{i:04d}" for i in range(REPORTS_PER_DAY + 1)]
    with api.client() as c:
        batch = c.post("/v1/risk/numbers:batch", json={"phoneNumbers": phones}, headers=bank)
        assert batch.status_code == 200
        codes = [
            c.post("/v1/reports", json={"phoneNumber": p, "label": "false_positive"}, headers=bank).status_code
            for p in phones
        ]
        assert codes == [202] * REPORTS_PER_DAY + [429]
        contests = [
            c.post("/v1/contests", json={"phoneNumber": p, "reason": "our customer"}, headers=bank)
            for p in phones[: CONTESTS_PER_DAY + 1]
        ]
        assert [r.status_code for r in contests] == [201] * CONTESTS_PER_DAY + [429]
        assert contests[-1].json()["code"] == "QUOTA_EXCEEDED"
        # never looked up: refused before any cap is spent
        assert (
            c.post(
                "/v1/contests", json={"phoneNumber": "+31622099999", "reason": "x" * 5}, headers=api.auth("bank-b")
            ).status_code
            == 403
        )


def test_contests_are_paged(guarded: ApiServer) -> None:
    api = guarded
    operator, telco = api.auth("operator-a"), api.auth("telco-a")
    phones = [f"+3162202{i:04d}" for i in range(3)]
    with api.client() as c:
        assert c.post("/v1/risk/numbers:batch", json={"phoneNumbers": phones}, headers=telco).status_code == 200
        for p in phones:
            r = c.post("/v1/contests", json={"phoneNumber": p, "reason": "our subscriber"}, headers=telco)
            assert r.status_code == 201, r.text
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/v1/contests", params=params, headers=operator).json()
            pages += 1
            assert len(page["contests"]) <= 2
            seen.extend(x["id"] for x in page["contests"])
            cursor = page.get("nextCursor")
            if not cursor:
                break
        everything = c.get("/v1/contests", params={"limit": 500}, headers=operator).json()["contests"]
    assert pages >= 2 and len(seen) == len(set(seen)) == len(everything) >= 3
