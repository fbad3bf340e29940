"""CAMARA SIM Swap Subscriptions 0.3.0 end to end: real broker, real uvicorn, a real sink
receiver on loopback. Subscriptions are created through the API, swaps arrive as risk records
on the broker (as the scorer writes them), and the CloudEvents the sink receives are checked
against the vendored spec (tests/api/specs)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import msgspec
import pytest
import yaml

from services.api.partner_state import encode_state, state_key
from services.api.partners import hash_secret
from services.api.subscriptions import ENDED, SWAPPED, TOKEN_LEAD_S
from services.api.webhooks import owner_of
from services.common.topics import PARTNER_STATE, ensure_topics
from tests.api import conftest
from tests.api.conftest import ApiServer, ScorerOutput, ServerThread, eventually, iso, partners_yaml, start_api
from tests.api.test_camara_integration import _to_json_schema

pytestmark = pytest.mark.kafka

SPEC = yaml.safe_load(
    (Path(__file__).resolve().parent / "specs" / "camara-sim-swap-subscriptions-v0.3.0.yaml").read_text()
)
BASE = "/sim-swap-subscriptions/v0.3"
TOKEN = "sink-token-" + uuid.uuid4().hex
CAP = 4
EXTRA = {"telco-b": "telco", "telco-tight": "telco"}
for _partner in EXTRA:
    conftest.SECRETS[_partner] = f"{_partner}-secret-0123456789"


def _validator(name: str) -> jsonschema.Validator:
    root = {"components": _to_json_schema(SPEC["components"]), "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


def _as_deployed(subscription: dict[str, Any]) -> dict[str, Any]:
    """The tests' sinks are http on loopback (``webhook_allow_http``, as the webhook tests); the
    spec's sink pattern is https, which a production deployment enforces."""
    return {**subscription, "sink": subscription["sink"].replace("http://", "https://", 1)}


def _error_validator(response: str) -> jsonschema.Validator:
    schema = SPEC["components"]["responses"][response]["content"]["application/json"]["schema"]
    root = {"components": _to_json_schema(SPEC["components"]), **_to_json_schema(schema)}
    return jsonschema.Draft202012Validator(root)


class Sink:
    """A notification listener on loopback: records every POST, answers 204."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                sink.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/camara/notifications"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, subscription_id: str) -> list[dict[str, Any]]:
        return [body for _, body in self.received if body.get("data", {}).get("subscriptionId") == subscription_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _partners() -> dict[str, Any]:
    big = conftest.BIG
    extra = [
        {"id": "telco-b", "type": "telco", "client_secret_hash": hash_secret(conftest.SECRETS["telco-b"]), **big},
        {
            "id": "telco-tight",
            "type": "telco",
            "client_secret_hash": hash_secret(conftest.SECRETS["telco-tight"]),
            "lookup_budget_per_hour": 2,
        },
    ]
    return partners_yaml(extra)


@pytest.fixture(scope="module")
def subs_api(kafka_bootstrap: str, api_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server, thread = start_api(
        tmp_path_factory.mktemp("subs"),
        kafka_bootstrap,
        api_prefix,
        partners=_partners(),
        sim_swap_subscriptions_max=CAP,
    )
    try:
        yield server
    finally:
        thread.stop()


@pytest.fixture()
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


def _request(phone: str | None, sink_url: str, credential: bool = True, **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "protocol": "HTTP",
        "sink": sink_url,
        "types": [SWAPPED],
        "config": {"subscriptionDetail": {"phoneNumber": phone} if phone else {}, **config},
    }
    if credential:
        body["sinkCredential"] = {
            "credentialType": "ACCESSTOKEN",
            "accessToken": TOKEN,
            "accessTokenExpiresUtc": iso(datetime.now(UTC) + timedelta(hours=1)),
            "accessTokenType": "bearer",
        }
    return body


def _create(api: ApiServer, partner: str, body: dict[str, Any]) -> httpx.Response:
    with api.client() as c:
        return c.post(f"{BASE}/subscriptions", json=body, headers=api.auth(partner))


def _risk_read(api: ApiServer) -> int:
    """Risk records the API has materialised (the position moves after the subscriptions saw one)."""
    positions = dict(api.service.positions)
    return sum(v for k, v in positions.items() if k.startswith(api.service.topic_risk + ":"))


def _delivered_all(api: ApiServer) -> bool:
    """Nothing queued or in flight in the replica's webhook dispatcher."""
    assert api.service.dispatcher is not None
    return api.service.dispatcher.pending() == 0


def _swap(scorer: ScorerOutput, phone: str, at: datetime | None = None, score: int = 0) -> None:
    scorer.risk(phone, level="none", score=score, sim_changed_at=iso(at or datetime.now(UTC)))
    scorer.flush()


def test_create_list_get_delete_against_the_spec(subs_api: ApiServer, sink: Sink) -> None:
    api = subs_api
    phone = "+31612349001"
    headers = {**api.auth("telco-a"), "x-correlator": "sub-test-1"}
    with api.client() as c:
        r = c.post(f"{BASE}/subscriptions", json=_request(phone, sink.url, subscriptionMaxEvents=3), headers=headers)
        assert r.status_code == 201, r.text
        assert r.headers["x-correlator"] == "sub-test-1"
        created = r.json()
        _validator("Subscription").validate(_as_deployed(created))
        assert created["config"] == {"subscriptionDetail": {"phoneNumber": phone}, "subscriptionMaxEvents": 3}
        assert created["status"] == "ACTIVE" and created["types"] == [SWAPPED] and created["sink"] == sink.url
        assert "sinkCredential" not in r.text and TOKEN not in r.text
        sub_id = created["id"]

        listed = c.get(f"{BASE}/subscriptions", headers=api.auth("telco-a"))
        assert listed.status_code == 200
        for item in listed.json():
            _validator("Subscription").validate(_as_deployed(item))
        assert sub_id in {s["id"] for s in listed.json()} and TOKEN not in listed.text
        got = c.get(f"{BASE}/subscriptions/{sub_id}", headers=api.auth("telco-a"))
        assert got.status_code == 200 and got.json() == created

        # another partner: not listed, and 404 exactly like an id that does not exist
        other = api.auth("telco-b")
        assert sub_id not in c.get(f"{BASE}/subscriptions", headers=other).text
        unknown = c.get(f"{BASE}/subscriptions/{uuid.uuid4()}", headers=other)
        theirs = c.get(f"{BASE}/subscriptions/{sub_id}", headers=other)
        assert theirs.status_code == unknown.status_code == 404 and theirs.json() == unknown.json()
        _error_validator("Generic404").validate(theirs.json())
        assert c.delete(f"{BASE}/subscriptions/{sub_id}", headers=other).status_code == 404
        assert c.get(f"{BASE}/subscriptions/{sub_id}", headers=api.auth("telco-a")).status_code == 200

        r = c.delete(f"{BASE}/subscriptions/{sub_id}", headers=api.auth("telco-a"))
        assert r.status_code == 204 and r.content == b""
        assert c.get(f"{BASE}/subscriptions/{sub_id}", headers=api.auth("telco-a")).status_code == 404
        assert sub_id not in c.get(f"{BASE}/subscriptions", headers=api.auth("telco-a")).text
        assert c.delete(f"{BASE}/subscriptions/{sub_id}", headers=api.auth("telco-a")).status_code == 404

    eventually(lambda: sink.events(sub_id))
    headers_in, ended = sink.received[-1]
    assert headers_in["authorization"] == f"Bearer {TOKEN}"
    assert headers_in["content-type"] == "application/cloudevents+json"
    _validator("EventSubscriptionEnded").validate(ended)
    assert ended["type"] == ENDED and ended["specversion"] == "1.0"
    assert ended["data"]["terminationReason"] == "SUBSCRIPTION_DELETED"
    assert ended["data"]["phoneNumber"] == phone
    # the record is removed once the ended notification is settled
    eventually(lambda: sub_id not in api.service.sim_swap_subs.subs)


ERROR_CASES: list[tuple[str, Any, int, str]] = [
    ("no phoneNumber", lambda b: b["config"].update(subscriptionDetail={}), 422, "MISSING_IDENTIFIER"),
    ("protocol MQTT3", lambda b: b.update(protocol="MQTT3"), 400, "INVALID_PROTOCOL"),
    ("protocol unknown", lambda b: b.update(protocol="SMTP"), 400, "INVALID_ARGUMENT"),
    (
        "PLAIN credential",
        lambda b: b.update(sinkCredential={"credentialType": "PLAIN", "identifier": "u", "secret": "s"}),
        400,
        "INVALID_CREDENTIAL",
    ),
    (
        "REFRESHTOKEN credential",
        lambda b: b["sinkCredential"].update(
            credentialType="REFRESHTOKEN", refreshToken="r", refreshTokenEndpoint="https://example.com/t"
        ),
        400,
        "INVALID_CREDENTIAL",
    ),
    ("token type mac", lambda b: b["sinkCredential"].update(accessTokenType="mac"), 400, "INVALID_TOKEN"),
    ("no access token", lambda b: b["sinkCredential"].pop("accessToken"), 400, "INVALID_ARGUMENT"),
    (
        "token expired",
        lambda b: b["sinkCredential"].update(accessTokenExpiresUtc=iso(datetime.now(UTC) - timedelta(minutes=1))),
        400,
        "INVALID_ARGUMENT",
    ),
    ("sink ftp", lambda b: b.update(sink="ftp://example.com/x"), 400, "INVALID_SINK"),
    ("sink unresolvable", lambda b: b.update(sink="https://no-such-host.invalid/x"), 400, "INVALID_SINK"),
    ("sink unspecified address", lambda b: b.update(sink="https://0.0.0.0/x"), 400, "INVALID_SINK"),
    (
        "expire time in the past",
        lambda b: b["config"].update(subscriptionExpireTime=iso(datetime.now(UTC) - timedelta(seconds=1))),
        400,
        "INVALID_ARGUMENT",
    ),
    ("max events 0", lambda b: b["config"].update(subscriptionMaxEvents=0), 400, "INVALID_ARGUMENT"),
    ("max events huge", lambda b: b["config"].update(subscriptionMaxEvents=2**64), 400, "INVALID_ARGUMENT"),
    ("max events text", lambda b: b["config"].update(subscriptionMaxEvents="3"), 400, "INVALID_ARGUMENT"),
    ("credential null", lambda b: b.update(sinkCredential=None), 400, "INVALID_ARGUMENT"),
    ("expire time null", lambda b: b["config"].update(subscriptionExpireTime=None), 400, "INVALID_ARGUMENT"),
    (
        "expire time beyond UTC's range",
        lambda b: b["config"].update(subscriptionExpireTime="9999-12-31T23:59:59-14:00"),
        400,
        "OUT_OF_RANGE",
    ),
    (
        "token expiry beyond UTC's range",
        lambda b: b["sinkCredential"].update(accessTokenExpiresUtc="9999-12-31T23:59:59-14:00"),
        400,
        "OUT_OF_RANGE",
    ),
    (
        "expire time without zone",
        lambda b: b["config"].update(subscriptionExpireTime="2099-01-01T00:00:00"),
        400,
        "INVALID_ARGUMENT",
    ),
    ("two types", lambda b: b.update(types=[SWAPPED, SWAPPED]), 400, "INVALID_ARGUMENT"),
    (
        "not E.164",
        lambda b: b["config"]["subscriptionDetail"].update(phoneNumber="0612345678"),
        400,
        "INVALID_ARGUMENT",
    ),
    (
        "impossible number",
        lambda b: b["config"]["subscriptionDetail"].update(phoneNumber="+346661113334"),
        422,
        "SERVICE_NOT_APPLICABLE",
    ),
]


def test_create_errors_are_the_specs(subs_api: ApiServer, sink: Sink) -> None:
    api = subs_api
    before = len(api.service.sim_swap_subs.subs)
    validators = {
        400: _error_validator("CreateSubscriptionBadRequest400"),
        422: _error_validator("CreateSubscriptionUnprocessableEntity422"),
    }
    wrong = {}
    for name, mutate, status, code in ERROR_CASES:
        body = _request("+31612349002", sink.url)
        mutate(body)
        r = _create(api, "telco-a", body)
        if (r.status_code, r.json().get("code")) != (status, code):
            wrong[name] = (r.status_code, r.text)
            continue
        assert set(r.json()) == {"status", "code", "message"}, name
        validators[status].validate(r.json())
    assert not wrong, wrong
    assert len(api.service.sim_swap_subs.subs) == before, "a refused request left a subscription"
    assert not sink.received


def test_swap_is_notified_once_with_the_bearer_token(subs_api: ApiServer, scorer: ScorerOutput, sink: Sink) -> None:
    api, phone = subs_api, "+31612349003"
    # a SIM change before the subscription is not an event
    _swap(scorer, phone, datetime.now(UTC) - timedelta(hours=2))
    eventually(lambda: api.service.risk.get("number:" + api.pseudonym(phone)))
    r = _create(api, "telco-a", _request(phone, sink.url))
    assert r.status_code == 201, r.text
    sub_id = r.json()["id"]
    first = datetime.now(UTC)
    started = time.monotonic()
    _swap(scorer, phone, first)
    eventually(lambda: sink.events(sub_id), interval_s=0.002)
    print(f"swap on the broker -> CloudEvent at the sink: {(time.monotonic() - started) * 1000:.0f} ms")
    headers, event = sink.received[0]
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "application/cloudevents+json"
    _validator("EventSimSwap").validate(event)
    assert event["type"] == SWAPPED and event["datacontenttype"] == "application/json"
    assert event["data"] == {"subscriptionId": sub_id, "phoneNumber": phone}
    assert event["time"] == iso(first)
    # the same SIM change again (another risk update) is not a new swap; a later one is
    _swap(scorer, phone, first, score=5)
    later = datetime.now(UTC)
    _swap(scorer, phone, later)
    eventually(lambda: len(sink.events(sub_id)) >= 2)
    # one FIFO worker per subscription, fed in topic order: a repeat of the first swap (from the
    # score-5 update, read before the later swap) would have been delivered second
    assert [e["time"] for e in sink.events(sub_id)[:2]] == [iso(first), iso(later)]
    eventually(lambda: _delivered_all(api))
    assert [e["type"] for e in sink.events(sub_id)] == [SWAPPED, SWAPPED]
    assert len({e["id"] for e in sink.events(sub_id)}) == 2
    assert api.service.sim_swap_subs.get("telco-a", sub_id).events == 2  # type: ignore[union-attr]
    with api.client() as c:
        assert c.delete(f"{BASE}/subscriptions/{sub_id}", headers=api.auth("telco-a")).status_code == 204
    eventually(lambda: len(sink.events(sub_id)) == 3)
    # create, both notifications and the delete are in the audit trail
    with api.client() as c:
        r = c.post("/v1/audit:query", json={"phoneNumber": phone}, headers=api.auth("operator-a"))
    actions = [rec["action"] for rec in r.json()["records"] if rec["partner"] == "telco-a"]
    for action in (
        "sim-swap-subscriptions:create",
        "sim-swap-subscriptions:notify:swapped",
        "sim-swap-subscriptions:delete",
    ):
        assert action in actions, actions
    assert actions.count("sim-swap-subscriptions:notify:swapped") == 2


def test_max_events_ends_the_subscription(subs_api: ApiServer, scorer: ScorerOutput, sink: Sink) -> None:
    api, phone = subs_api, "+31612349004"
    r = _create(api, "telco-a", _request(phone, sink.url, subscriptionMaxEvents=1))
    sub_id = r.json()["id"]
    _swap(scorer, phone)
    eventually(lambda: len(sink.events(sub_id)) == 2)
    swapped, ended = sink.events(sub_id)
    assert swapped["type"] == SWAPPED
    _validator("EventSubscriptionEnded").validate(ended)
    assert ended["data"]["terminationReason"] == "MAX_EVENTS_REACHED"
    with api.client() as c:
        assert c.get(f"{BASE}/subscriptions/{sub_id}", headers=api.auth("telco-a")).status_code == 404
    before = _risk_read(api)
    _swap(scorer, phone)
    # the swap was materialised (which notifies the subscriptions) and nothing waits for delivery
    eventually(lambda: _risk_read(api) > before and _delivered_all(api))
    assert len(sink.events(sub_id)) == 2


@pytest.mark.parametrize("reason", ["SUBSCRIPTION_EXPIRED", "ACCESS_TOKEN_EXPIRED"])
def test_time_ends_the_subscription(subs_api: ApiServer, sink: Sink, reason: str) -> None:
    api = subs_api
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    body = _request("+31612349005", sink.url)
    if reason == "SUBSCRIPTION_EXPIRED":
        body["config"]["subscriptionExpireTime"] = iso(soon)
    else:
        body["sinkCredential"]["accessTokenExpiresUtc"] = iso(soon + timedelta(seconds=TOKEN_LEAD_S))
    r = _create(api, "telco-a", body)
    assert r.status_code == 201, r.text
    sub_id = r.json()["id"]
    if reason == "SUBSCRIPTION_EXPIRED":
        assert r.json()["expiresAt"] == iso(soon) and r.json()["config"]["subscriptionExpireTime"] == iso(soon)
    event = eventually(lambda: sink.events(sub_id), timeout_s=15)[0]
    assert datetime.now(UTC) >= soon
    headers = sink.received[-1][0]
    assert headers["authorization"] == f"Bearer {TOKEN}"  # sent while the token is still valid
    _validator("EventSubscriptionEnded").validate(event)
    assert event["data"]["terminationReason"] == reason
    with api.client() as c:
        assert c.get(f"{BASE}/subscriptions/{sub_id}", headers=api.auth("telco-a")).status_code == 404


def test_the_cap_and_the_lookup_budget_hold(subs_api: ApiServer, sink: Sink) -> None:
    api = subs_api
    ids = []
    for i in range(CAP):
        r = _create(api, "telco-b", _request(f"+3161234{9100 + i}", sink.url))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    refused = _create(api, "telco-b", _request("+31612349199", sink.url))
    assert refused.status_code == 429 and refused.json()["code"] == "QUOTA_EXCEEDED"
    _error_validator("Generic429").validate(refused.json())
    with api.client() as c:
        assert c.delete(f"{BASE}/subscriptions/{ids[0]}", headers=api.auth("telco-b")).status_code == 204
    assert _create(api, "telco-b", _request("+31612349199", sink.url)).status_code == 201

    # telco-tight may look up 2 distinct numbers an hour: a subscription spends one
    with api.client() as c:
        check = c.post("/sim-swap/v2/check", json={"phoneNumber": "+31612349201"}, headers=api.auth("telco-tight"))
        assert check.status_code == 200
    assert _create(api, "telco-tight", _request("+31612349202", sink.url)).status_code == 201
    over = _create(api, "telco-tight", _request("+31612349203", sink.url))
    assert over.status_code == 429 and over.json()["code"] == "QUOTA_EXCEEDED"
    assert len(api.service.sim_swap_subs.active_of("telco-tight")) == 1


def test_one_deliverer_and_a_restarted_replica_keeps_the_subscription(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"s{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=3)
    scorer = ScorerOutput(kafka_bootstrap, prefix)
    sink = Sink()
    threads: list[ServerThread] = []
    owner = owner_of("telco-a", 2)
    pods = [f"fr-fraudradar-api-webhooks-{i}" for i in range(2)]

    def start(**overrides: Any) -> ApiServer:
        server, thread = start_api(tmp_path, kafka_bootstrap, prefix, **overrides)
        threads.append(thread)
        return server

    try:
        lookup = start(webhook_delivery=False)
        delivery = [start(replica_count=2, pod_name=pods[i]) for i in range(2)]
        phone = "+31612349301"
        r = _create(lookup, "telco-a", _request(phone, sink.url))
        assert r.status_code == 201, r.text
        sub_id = r.json()["id"]
        eventually(lambda: delivery[owner].service.dispatcher.has_worker(sub_id))
        assert not delivery[1 - owner].service.dispatcher.has_worker(sub_id)
        assert sub_id in delivery[1 - owner].service.sim_swap_subs.subs  # every replica has it
        first = datetime.now(UTC)
        _swap(scorer, phone, first)
        eventually(lambda: len(sink.events(sub_id)) == 1)
        eventually(lambda: lookup.service.sim_swap_subs.subs[sub_id].events == 1)  # settled, recorded

        # the owner restarts: it rebuilds the subscription from the partner-state topic, does not
        # repeat the settled swap (replaying the risk topic), and delivers the next one
        threads.pop(1 + owner).stop()
        restarted = start(replica_count=2, pod_name=pods[owner])
        with restarted.client() as c:
            got = c.get(f"{BASE}/subscriptions/{sub_id}", headers=restarted.auth("telco-a"))
        assert got.status_code == 200 and got.json()["config"]["subscriptionDetail"]["phoneNumber"] == phone
        assert restarted.service.dispatcher.has_worker(sub_id)
        second = datetime.now(UTC)
        _swap(scorer, phone, second)
        eventually(lambda: len(sink.events(sub_id)) >= 2)
        # one FIFO worker per subscription: a replayed first swap would have come before this one
        assert [e["time"] for e in sink.events(sub_id)[:2]] == [iso(first), iso(second)]
        eventually(lambda: _delivered_all(restarted))
        assert not delivery[1 - owner].service.dispatcher.has_worker(sub_id)  # no second deliverer
        assert [e["type"] for e in sink.events(sub_id)] == [SWAPPED, SWAPPED]
        assert len(sink.received) == 2

        # the partner loses the create scope (partners file changed, owner restarted): the
        # owner ends its subscriptions with NETWORK_TERMINATED
        threads.pop().stop()
        revoked = _partners()
        for entry in revoked["partners"]:
            if entry["id"] == "telco-a":
                entry["scopes"] = ["risk:numbers", "sim-swap-subscriptions:read"]
        start(replica_count=2, pod_name=pods[owner], partners=revoked)
        ended = eventually(lambda: sink.events(sub_id)[2:])[0]
        _validator("EventSubscriptionEnded").validate(ended)
        assert ended["data"]["terminationReason"] == "NETWORK_TERMINATED"
        eventually(lambda: sub_id not in lookup.service.sim_swap_subs.subs)
    finally:
        for thread in reversed(threads):
            thread.stop()
        sink.close()
        scorer.close()


def test_a_delete_from_a_stale_view_still_ends_it(subs_api: ApiServer, scorer: ScorerOutput, sink: Sink) -> None:
    """A replica whose view lags the owner's count updates deletes with a lower revision: the
    end still wins on every replica (written here to the real partner-state topic, as such a
    replica's DELETE would write it)."""
    api, phone = subs_api, "+31612349006"
    sub_id = _create(api, "telco-a", _request(phone, sink.url)).json()["id"]
    stale = api.service.sim_swap_subs.get("telco-a", sub_id)
    _swap(scorer, phone)
    eventually(lambda: api.service.sim_swap_subs.subs[sub_id].revision == 1)
    ended = msgspec.structs.replace(stale, ended="SUBSCRIPTION_DELETED")  # revision 0
    scorer.producer.send(
        scorer.settings.topic(PARTNER_STATE), key=state_key(ended).encode(), value=encode_state(ended)
    )
    scorer.flush()
    event = eventually(lambda: sink.events(sub_id)[1:])[0]
    assert event["data"]["terminationReason"] == "SUBSCRIPTION_DELETED"
    with api.client() as c:
        assert c.get(f"{BASE}/subscriptions/{sub_id}", headers=api.auth("telco-a")).status_code == 404
