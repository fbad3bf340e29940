"""Who delivers webhooks: autoscaled lookup replicas never do; each partner is delivered by
exactly one of the fixed delivery replicas; a delivery replica that restarts resumes from its
cursor on the partner-state topic (real broker, three real servers, real receivers)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from services.api.config import ApiSettings
from services.api.webhooks import owner_of
from services.common.topics import ensure_topics
from tests.api.conftest import ApiServer, ScorerOutput, ServerThread, eventually, start_api, steady
from tests.api.test_webhooks_feed import Receiver

# how long "no second delivery" is watched: longer than a replica's materialisation of the alert
# and than the dispatcher's cursor flush period (2 s, services/api/webhooks.py)
DUPLICATE_WINDOW_S = 3.0


def test_delivery_index_comes_from_the_statefulset_pod_name() -> None:
    assert ApiSettings(pod_name="fr-fraudradar-api-webhooks-2", replica_count=3).delivery_index() == 2
    assert ApiSettings(pod_name="fr-fraudradar-api-webhooks-2", replica_count=3, replica_index=1).delivery_index() == 1
    assert ApiSettings().delivery_index() == 0
    with pytest.raises(ValueError, match="not below"):
        ApiSettings(pod_name="x-webhooks-3", replica_count=3)
    # a lookup replica's pod name (Deployment hash suffix) is irrelevant: it does not deliver
    assert not ApiSettings(webhook_delivery=False, pod_name="fr-api-5d8f7-x2x9q").webhook_delivery


def test_the_split_covers_every_partner_once() -> None:
    partners = [f"partner-{i}" for i in range(200)]
    for count in (1, 2, 3, 5):
        owners = [owner_of(p, count) for p in partners]
        assert all(0 <= o < count for o in owners)
        assert len(set(owners)) == count  # every replica gets a share


@pytest.mark.kafka
def test_one_owner_per_partner_and_restart_resumes_from_cursor(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"d{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=3)
    # platform-a and telco-a (both entitled to all alerts) fall to different delivery replicas
    assert (owner_of("platform-a", 2), owner_of("telco-a", 2)) == (0, 1)
    scorer = ScorerOutput(kafka_bootstrap, prefix)
    servers: list[ServerThread] = []
    receivers = {"platform-a": Receiver(), "telco-a": Receiver()}

    def start(**overrides: object) -> ApiServer:
        server, thread = start_api(tmp_path, kafka_bootstrap, prefix, **overrides)
        servers.append(thread)
        return server

    try:
        lookup = start(webhook_delivery=False)
        delivery = [
            start(replica_count=2, pod_name="fr-fraudradar-api-webhooks-0"),
            start(replica_count=2, pod_name="fr-fraudradar-api-webhooks-1"),
        ]
        assert lookup.service.dispatcher is None
        hooks: dict[str, str] = {}
        with lookup.client() as c:
            for partner, receiver in receivers.items():
                r = c.post(
                    "/v1/webhooks",
                    json={"url": receiver.url, "events": ["alert.raised"]},
                    headers=lookup.auth(partner),
                )
                assert r.status_code == 201, r.text
                receiver.secret = r.json()["secret"]
                hooks[partner] = r.json()["id"]
        for partner, hook in hooks.items():
            owner = owner_of(partner, 2)
            eventually(lambda hook=hook, owner=owner: delivery[owner].service.dispatcher.has_worker(hook))
            assert not delivery[1 - owner].service.dispatcher.has_worker(hook)

        first = [scorer.alert(f"+3161235{7000 + i}", level="critical", score=95) for i in range(5)]
        scorer.flush()
        for receiver in receivers.values():
            eventually(lambda receiver=receiver: len(receiver.unique()) == len(first), timeout_s=20)
        # a second deliverer would post as soon as its replica materialised the alert: watch longer
        # than that and than the cursor flush period
        steady(lambda: all(len(r.requests) == len(first) for r in receivers.values()), DUPLICATE_WINDOW_S)
        for receiver in receivers.values():
            assert {v["data"]["alertId"] for v in receiver.verified} == {a.alert_id for a in first}

        # Replica 0 restarts (SIGTERM path: it saves its cursor). Alerts raised meanwhile go to
        # replica 1's partner at once and to replica 0's partner once it is back, nothing twice.
        servers.pop(1).stop()
        second = [scorer.alert(f"+3161235{7100 + i}", level="critical", score=95) for i in range(4)]
        scorer.flush()
        total = len(first) + len(second)
        eventually(lambda: len(receivers["telco-a"].unique()) == total, timeout_s=20)
        assert len(receivers["platform-a"].requests) == len(first)
        restarted = start(replica_count=2, pod_name="fr-fraudradar-api-webhooks-0")
        assert restarted.service.dispatcher.has_worker(hooks["platform-a"])
        eventually(lambda: len(receivers["platform-a"].unique()) == total, timeout_s=20)
        platform = receivers["platform-a"]
        steady(lambda: len(platform.requests) == total, DUPLICATE_WINDOW_S)   # no re-delivery of settled events
        # (alerts spread over partitions: order is per partition only)
        assert {v["data"]["alertId"] for v in platform.verified[len(first) :]} == {a.alert_id for a in second}
        assert platform.bad_signatures == 0
    finally:
        for thread in reversed(servers):
            thread.stop()
        for receiver in receivers.values():
            receiver.close()
        scorer.close()
