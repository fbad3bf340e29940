"""Alert feed, SSE stream, watch-lists and webhooks end to end: scorer records on the real
broker, signed deliveries to real receivers on loopback (one fails half of the time)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from services.api.webhooks import UrlPolicy, new_secret, owner_of, sign
from tests.api.conftest import ApiServer, ScorerOutput, eventually


class Receiver:
    """A webhook receiver on loopback; ``fail_every`` > 0 fails every n-th request with 500."""

    def __init__(self, fail_every: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.failures = 0
        self.secret: str | None = None
        self.verified: list[dict[str, Any]] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append((headers, body))
                if fail_every and len(receiver.requests) % fail_every == 1:
                    receiver.failures += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                try:
                    payload = Verifier(receiver.secret or "").verify(body, headers)
                    receiver.verified.append({"id": headers["webhook-id"], **payload})
                    self.send_response(204)
                except Exception:
                    receiver.bad_signatures += 1
                    self.send_response(400)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/fraud"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def unique(self) -> dict[str, dict[str, Any]]:
        return {v["id"]: v for v in self.verified}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    good, flaky = Receiver(), Receiver(fail_every=2)
    yield good, flaky
    good.close()
    flaky.close()


def test_signature_matches_reference_implementation() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"type":"alert.raised"}'
    ours = sign(secret, "msg_1", 1_700_000_000, body)
    from datetime import UTC, datetime

    reference = Verifier(secret).sign("msg_1", datetime.fromtimestamp(1_700_000_000, UTC), body.decode())
    assert ours == reference


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://127.0.0.1/x", 403),
        ("https://10.1.2.3/x", 403),
        ("https://169.254.169.254/latest", 403),
        ("https://[::1]/x", 403),
        ("https://[::ffff:127.0.0.1]/x", 403),
        ("https://0.0.0.0/x", 403),
        ("https://localhost/x", 403),
        ("https://no-such-host.invalid/x", 403),
        ("http://8.8.8.8/x", 400),
        ("https://user:pw@8.8.8.8/x", 400),
        ("ftp://8.8.8.8/x", 400),
    ],
)
def test_ssrf_guard_refuses(url: str, status: int) -> None:
    """Malformed targets are 400 (the schema's pattern excludes them too); a well-formed URL
    whose host does not resolve to public addresses only is 403 PERMISSION_DENIED."""
    import asyncio

    from services.api.exceptions import ApiError

    with pytest.raises(ApiError) as refused:
        asyncio.run(UrlPolicy().resolve(url))
    assert refused.value.status == status
    assert refused.value.code == ("PERMISSION_DENIED" if status == 403 else "INVALID_ARGUMENT")


def test_webhook_url_pattern_is_what_the_syntax_check_takes() -> None:
    import re

    from services.api.schemas import WEBHOOK_URL_PATTERN

    pattern = re.compile(WEBHOOK_URL_PATTERN)
    for good in ("https://hooks.example.com/p?q=1", "https://a.b:65535", "https://8.8.8.8/x/y"):
        assert pattern.match(good)
        UrlPolicy().check_syntax(good)
    for bad in ("http://a.b/", "https://u:p@a.b/", "https://a.b/#f", "https://a.b:65536/", "https://[::1]/"):
        assert not pattern.match(bad)


def test_ssrf_guard_accepts_public_https() -> None:
    assert UrlPolicy().address_allowed("8.8.8.8")
    assert UrlPolicy().check_syntax("https://hooks.example.com:8443/p") == (
        "https",
        "hooks.example.com",
        8443,
    )


def test_signature_known_answer_and_secret_prefix() -> None:
    # HMAC-SHA256 over "msg_1.1700000000." + body under the base64 key after "whsec_", as
    # `printf 'msg_1.1700000000.{}' | openssl dgst -sha256 -hmac 'fraudradar-webhook-key-24' -binary | base64`
    secret = "whsec_" + base64.b64encode(b"fraudradar-webhook-key-24").decode()
    assert sign(secret, "msg_1", 1_700_000_000, b"{}") == "v1,YJyP4JNd/zASQ0XKlnLktiNhYiw6tJAE08gXU3IBn5k="
    assert sign(secret.removeprefix("whsec_"), "msg_1", 1_700_000_000, b"{}") == sign(secret, "msg_1",
                                                                                        1_700_000_000, b"{}")
    assert new_secret().startswith("whsec_") and len(base64.b64decode(new_secret()[6:])) == 24


def test_owner_of_is_a_stable_hash_mod_count() -> None:
    # pinned: a change would move every partner's deliveries to another replica on upgrade
    assert [owner_of(p, n) for p, n in [("bank-a", 3), ("bank-b", 3), ("platform-a", 2), ("telco-a", 5),
                                        ("operator-a", 7)]] == [2, 1, 0, 0, 6]
    assert owner_of("anyone", 1) == 0


def test_url_syntax_errors_and_default_ports() -> None:
    from services.api.webhooks import UnsafeUrl

    policy = UrlPolicy()
    assert policy.check_syntax("https://a.example/x") == ("https", "a.example", 443)
    assert UrlPolicy(allow_http=True).check_syntax("http://a.example/x") == ("http", "a.example", 80)
    for url, message in (("https://a.example:99999/", "not a valid URL"), ("http://a.example/", "must use https"),
                         ("ftp://a.example/", "must use https"), ("https://u@a.example/", "must not carry"),
                         ("https://:p@a.example/", "must not carry"), ("https:///x", "needs a host"),
                         ("https://a.example/#f", "must not have a fragment")):
        with pytest.raises(UnsafeUrl, match=message):
            policy.check_syntax(url)


def test_address_policy() -> None:
    public, private = UrlPolicy(), UrlPolicy(allow_private=True)
    for address in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"):
        assert public.address_allowed(address) and private.address_allowed(address)
    for address in ("10.0.0.1", "127.0.0.1", "::1", "::ffff:10.0.0.1", "fe80::1%eth0", "192.168.1.1"):
        assert not public.address_allowed(address) and private.address_allowed(address)
    for address in ("0.0.0.0", "::", "224.0.0.1", "ff02::1"):
        assert not public.address_allowed(address) and not private.address_allowed(address)


@pytest.mark.kafka
def test_watchlist_webhooks_feed_and_stream(
    api: ApiServer, scorer: ScorerOutput, receivers: tuple[Receiver, Receiver]
) -> None:
    good, flaky = receivers
    phone, other = "+31612349001", "+31612349002"
    with api.client() as c:
        bank = api.auth("bank-a")
        entry = c.post(
            "/v1/watchlist/entries", json={"phoneNumber": phone, "reference": "cust-42"}, headers=bank
        )
        assert entry.status_code == 201
        hooks = []
        for receiver in (good, flaky):
            r = c.post(
                "/v1/webhooks",
                json={"url": receiver.url, "events": ["alert.raised", "risk.changed"]},
                headers=bank,
            )
            assert r.status_code == 201, r.text
            receiver.secret = r.json()["secret"]
            assert "secret" not in c.get(f"/v1/webhooks/{r.json()['id']}", headers=bank).json()
            hooks.append(r.json()["id"])
        cursor = c.get("/v1/alerts", params={"limit": 500}, headers=api.auth("telco-a")).json()["nextCursor"]

        with (
            httpx.Client(base_url=api.base, timeout=20) as sse_client,
            sse_client.stream(
                "GET",
                "/v1/alerts:stream",
                params={"cursor": cursor, "max_seconds": 20},
                headers=api.auth("telco-a"),
            ) as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            scorer.risk(phone, level="high", score=81)
            watched_alert = scorer.alert(phone, level="high", score=81)
            unwatched_alert = scorer.alert(other, level="critical", score=95)
            scorer.flush()
            events: list[dict[str, Any]] = []
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                if len(events) >= 2:
                    break
        assert {e["alertId"] for e in events} == {watched_alert.alert_id, unwatched_alert.alert_id}
        telco_view = next(e for e in events if e["alertId"] == watched_alert.alert_id)
        assert telco_view["phoneNumber"] == phone  # tier full discloses the number

        # cursor feed: the bank (entitlement: its watch-list) sees only the watched number
        page = c.get("/v1/alerts", params={"cursor": cursor}, headers=bank).json()
        assert [a["alertId"] for a in page["alerts"]] == [watched_alert.alert_id]
        assert page["alerts"][0]["watchIds"] == [entry.json()["id"]]
        assert "phoneNumber" not in page["alerts"][0] and "evidence" not in page["alerts"][0]
        assert c.get("/v1/alerts", params={"cursor": page["nextCursor"]}, headers=bank).json()["alerts"] == []
        other_bank = c.get("/v1/alerts", params={"cursor": cursor}, headers=api.auth("bank-b")).json()
        assert other_bank["alerts"] == []
        # a platform (entitlement all, min level high) sees both, without the number
        platform = c.get("/v1/alerts", params={"cursor": cursor}, headers=api.auth("platform-a")).json()[
            "alerts"
        ]
        assert len(platform) == 2 and all("phoneNumber" not in a for a in platform)
        assert len({a["subjectRef"] for a in platform}) == 2
        assert platform[0]["subjectRef"] != page["alerts"][0]["subjectRef"]  # not linkable across partners
        assert c.get("/v1/alerts", params={"cursor": "%%%"}, headers=bank).status_code == 400
        # a well-formed cursor past the end is an empty page, not an error
        far = c.get("/v1/alerts", params={"cursor": "0-999999.1-999999.2-999999.7-5"}, headers=bank)
        assert far.status_code == 200 and far.json()["alerts"] == []

    # webhooks: both receivers get both events, signed; the flaky one after retries
    def delivered(receiver: Receiver) -> bool:
        types = {v["type"] for v in receiver.unique().values()}
        return types == {"alert.raised", "risk.changed"}

    eventually(lambda: delivered(good) and delivered(flaky), timeout_s=30)
    assert good.bad_signatures == flaky.bad_signatures == 0
    assert flaky.failures >= 1
    for receiver in (good, flaky):
        by_type = {v["type"]: v for v in receiver.unique().values()}
        assert by_type["risk.changed"]["data"]["watchId"] == entry.json()["id"]
        assert by_type["risk.changed"]["data"]["reference"] == "cust-42"
        assert by_type["risk.changed"]["data"]["level"] == "high"
        assert by_type["risk.changed"]["data"]["previousLevel"] == "none"
        assert by_type["alert.raised"]["data"]["alertId"] == watched_alert.alert_id
        for headers, body in receiver.requests:
            assert phone.encode() not in body
            assert headers["webhook-id"] and headers["webhook-signature"].startswith("v1,")
    # retries of one event carry the same webhook-id (deduplicable)
    assert len({h["webhook-id"] for h, _ in flaky.requests}) < len(flaky.requests)
    metrics = httpx.get(api.ops + "/metrics").text
    assert 'fraudradar_webhook_deliveries_total{outcome="failed"}' in metrics
    assert 'fraudradar_webhook_deliveries_total{outcome="delivered"}' in metrics

    with api.client() as c:
        for hook in hooks:
            assert c.delete(f"/v1/webhooks/{hook}", headers=bank).status_code == 204
        assert c.delete(f"/v1/watchlist/entries/{entry.json()['id']}", headers=bank).status_code == 204


def test_resolve_returns_the_checked_address_and_errors_are_exact() -> None:
    import asyncio

    from services.api.webhooks import ForbiddenTarget, UnsafeUrl

    assert asyncio.run(UrlPolicy().resolve("https://8.8.8.8/x")) == ("https", "8.8.8.8", 443, "8.8.8.8")
    assert asyncio.run(UrlPolicy().resolve("https://8.8.4.4:8443/x")) == ("https", "8.8.4.4", 8443, "8.8.4.4")
    for url, message in (("https://no-such-host.invalid/x", "url host does not resolve to public addresses."),
                         ("https://127.0.0.1/x", "url must resolve to public addresses only.")):
        with pytest.raises(ForbiddenTarget) as refused:
            asyncio.run(UrlPolicy().resolve(url))
        assert refused.value.message == message
    for url, message in (("https://a.example:99999/", "url is not a valid URL."),
                         ("http://a.example/", "url must use https."),
                         ("https://u@a.example/", "url must not carry credentials."),
                         ("https:///x", "url needs a host."),
                         ("https://a.example/#f", "url must not have a fragment.")):
        with pytest.raises(UnsafeUrl) as bad:
            UrlPolicy().check_syntax(url)
        assert bad.value.message == message
