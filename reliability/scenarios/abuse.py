"""Abuse of the partner API (issue #21), each as an attacker would try it, on the rig's broker:

- ``abuse_watchlist``: a bank whose hourly budget is spent keeps adding numbers to its
  watch-list and reads the alert feed (the side door): entries past the budget answer 429,
  every accepted entry is audited, and alerts raised before an entry never show;
- ``abuse_token_lockout``: wrong secrets for a partner's client id from another address: they
  are limited in their own bucket and the partner keeps getting tokens and its whole quota;
- ``abuse_unknown_clients``: unknown client ids from many connections: limited like known
  ones, the same answer, and a real token request still goes through during the flood;
- ``abuse_feedback``: reports on numbers never looked up, made-up alert ids, contests past
  the daily cap: refused; contests listed in pages;
- ``abuse_streams``: more alert streams than the cap on one token: refused; a new stream
  starts at the live end and resumes from ``Last-Event-ID`` (no backlog replay).

The API runs in this process on loopback, served as ``fraudradar api`` serves it
(``services.api.server``); attackers connect from other loopback addresses than the partner.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx

from reliability.context import Context
from reliability.outcome import Outcome, run_steps

CHECKS = ("abuse_watchlist", "abuse_token_lockout", "abuse_unknown_clients", "abuse_feedback", "abuse_streams")
BURST = 10
STREAMS = 3
CONTESTS_PER_DAY = 5


def _watchlist(ctx: Context, server: Any) -> Outcome:
    from tests.api.abuse_support import WATCH_BUDGET, wait_alert
    from tests.api.conftest import ScorerOutput, eventually

    scorer = ScorerOutput(server.bootstrap, server.prefix)
    tries = max(WATCH_BUDGET * 4, ctx.params.lookups)
    phones = [f"+3162500{i:04d}" for i in range(tries)]
    ctx.identifiers.numbers.update(phones)
    try:
        with server.client() as c:
            start = c.get("/v1/alerts", params={"limit": 500}, headers=server.auth("telco-a")).json()["nextCursor"]
            early = scorer.alert(phones[0], level="high")   # raised before any entry exists
            scorer.flush()
            wait_alert(server, start, early.alert_id)
            bank = server.auth("bank-w")
            codes = [c.post("/v1/watchlist/entries", json={"phoneNumber": p}, headers=bank).status_code for p in phones]
            feed = c.get("/v1/alerts", params={"cursor": start}, headers=bank).json()["alerts"]
            leaked_before = [a for a in feed if a["alertId"] == early.alert_id]
            later = scorer.alert(phones[0], level="high")
            scorer.flush()
            wait_alert(server, start, later.alert_id)
            feed = c.get("/v1/alerts", params={"cursor": start}, headers=bank).json()["alerts"]
            shown_after = [a["alertId"] for a in feed]

            def audited() -> list[dict[str, Any]] | None:
                r = c.post("/v1/audit:query", json={"phoneNumber": phones[1]}, headers=server.auth("operator-a"))
                got = [x for x in r.json()["records"] if x["partner"] == "bank-w" and x["action"] == "watchlist:add"]
                return got or None

            audit = eventually(audited, timeout_s=30, interval_s=0.5)
    finally:
        scorer.close()
    accepted = codes.count(201)
    figure = {"entries_tried": tries, "budget": WATCH_BUDGET, "accepted": accepted, "refused_429": codes.count(429),
              "alert_before_entry_shown": len(leaked_before), "alert_after_entry_shown": later.alert_id in shown_after,
              "audit_records_of_one_entry": len(audit)}
    passed = (accepted == WATCH_BUDGET and codes.count(429) == tries - WATCH_BUDGET and not leaked_before
              and shown_after == [later.alert_id] and len(audit) == 1)
    return Outcome(passed, figure, (
        f"a bank with a budget of {WATCH_BUDGET} numbers/h tried {tries} watch-list entries: {accepted} accepted, "
        f"{codes.count(429)} refused (429); the alert raised before its entry shown {len(leaked_before)} times, the "
        f"one after it {'shown' if later.alert_id in shown_after else 'NOT shown'}; entries audited "
        f"({len(audit)} record for one number)"))


def _lockout(ctx: Context, server: Any) -> Outcome:
    from tests.api.abuse_support import LOCK_QUOTA, client_from, token_request
    from tests.api.conftest import SECRETS

    secret = SECRETS["bank-lock"]
    attempts = max(LOCK_QUOTA * 5, ctx.params.lookups)
    phones = [f"+3162510{i:04d}" for i in range(LOCK_QUOTA - 3)]
    ctx.identifiers.numbers.update(phones)
    with client_from(server, "127.0.0.1") as partner, client_from(server, "127.0.0.2") as attacker:
        first = token_request(partner, "bank-lock", secret).status_code
        answers = [token_request(attacker, "bank-lock", f"guess-{i}-0123456789").status_code for i in range(attempts)]
        again = token_request(partner, "bank-lock", secret)
        headers = {"Authorization": "Bearer " + again.json().get("access_token", "")}
        lookups = [partner.post("/v1/risk/numbers:lookup", json={"phoneNumber": p}, headers=headers).status_code
                   for p in phones]
    figure = {"wrong_secret_attempts": attempts, "answered_401": answers.count(401), "answered_429": answers.count(429),
              "partner_token_before": first, "partner_token_after": again.status_code,
              "partner_lookups_answered": lookups.count(200), "partner_lookups": len(lookups), "quota": LOCK_QUOTA}
    passed = (answers.count(401) == BURST and answers.count(429) == attempts - BURST and first == again.status_code
              == 200 and lookups.count(200) == len(lookups))
    return Outcome(passed, figure, (
        f"{attempts} wrong-secret token requests for one partner's client id from another address: "
        f"{answers.count(401)} answered 401, then {answers.count(429)} 429 from their own bucket; the partner then "
        f"got a token ({again.status_code}) and {lookups.count(200)}/{len(lookups)} lookups of its "
        f"{LOCK_QUOTA}/day quota"))


def _unknown_clients(ctx: Context, server: Any) -> Outcome:
    from tests.api.abuse_support import client_from, token_request
    from tests.api.conftest import SECRETS

    connections = 48
    per_connection = 4

    def flood(n: int) -> list[int]:
        with client_from(server, f"127.0.2.{n + 1}") as c:
            return [token_request(c, f"x-{uuid.uuid4().hex[:12]}", "guess-0123456789").status_code
                    for _ in range(per_connection)]

    with client_from(server, "127.0.0.3") as probe:
        t0 = time.perf_counter()
        known = token_request(probe, "bank-a", "not-the-secret-0123456789")
        t1 = time.perf_counter()
        unknown = token_request(probe, "no-such-client", "not-the-secret-0123456789")
        t2 = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool, client_from(server, "127.0.0.1") as partner:
        futures = [pool.submit(flood, n) for n in range(connections)]
        started = time.perf_counter()
        real = token_request(partner, "bank-a", SECRETS["bank-a"])
        real_s = time.perf_counter() - started
        codes = [code for f in futures for code in f.result()]
    with client_from(server, "127.0.3.1") as again:
        over = [token_request(again, f"x-{uuid.uuid4().hex[:12]}", "guess-0123456789").status_code
                for _ in range(BURST + 5)]
    same = known.status_code == unknown.status_code == 401 and known.json() == unknown.json()
    figure = {"connections": connections, "attempts": len(codes),
              "answered": {str(k): codes.count(k) for k in set(codes)},
              "one_address_burst_then": {str(k): over.count(k) for k in set(over)},
              "known_and_unknown_same_answer": same, "real_token_status": real.status_code,
              "failure_seconds_known_id": round(t1 - t0, 3), "failure_seconds_unknown_id": round(t2 - t1, 3),
              "real_token_seconds_during_flood": round(real_s, 3)}
    passed = same and real.status_code == 200 and over == [401] * BURST + [429] * 5 and set(codes) <= {401, 429}
    return Outcome(passed, figure, (
        f"{connections} connections from {connections} addresses tried {len(codes)} unknown client ids: "
        f"{codes.count(401)} x 401 (the same answer as a wrong secret of a known id: {same}), "
        f"{codes.count(429)} x 429; "
        f"one address: {over.count(401)} x 401 then {over.count(429)} x 429 (no secret checked past its bucket of "
        f"{BURST}); a real token request during the "
        f"flood answered {real.status_code} in {real_s:.2f} s"))


def _feedback(ctx: Context, server: Any) -> Outcome:
    phones = [f"+3162520{i:04d}" for i in range(CONTESTS_PER_DAY + 3)]
    ctx.identifiers.numbers.update(phones)
    with server.client() as c:
        bank = server.auth("bank-feedback")
        never = [c.post("/v1/reports", json={"phoneNumber": p, "label": "false_positive"}, headers=bank).status_code
                 for p in phones]
        made_up = c.post("/v1/reports", json={"phoneNumber": phones[0], "label": "false_positive",
                                              "alertId": uuid.uuid4().hex}, headers=bank).status_code
        assert c.post("/v1/risk/numbers:batch", json={"phoneNumbers": phones}, headers=bank).status_code == 200
        reported = c.post("/v1/reports", json={"phoneNumber": phones[0], "label": "false_positive"},
                          headers=bank).status_code
        contests = [c.post("/v1/contests", json={"phoneNumber": p, "reason": "our customer"}, headers=bank).status_code
                    for p in phones]
        pages, cursor = 0, None
        seen: list[str] = []
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = c.get("/v1/contests", params=params, headers=bank).json()
            pages += 1
            seen.extend(x["id"] for x in page["contests"])
            cursor = page.get("nextCursor")
            if not cursor:
                break
    figure = {"reports_on_numbers_never_looked_up": {str(k): never.count(k) for k in set(never)},
              "made_up_alert_id": made_up, "report_after_lookup": reported,
              "contests": {str(k): contests.count(k) for k in set(contests)}, "contests_per_day": CONTESTS_PER_DAY,
              "contest_pages_of_2": pages, "contests_listed": len(seen)}
    passed = (set(never) == {403} and made_up == 404 and reported == 202
              and contests == [201] * CONTESTS_PER_DAY + [429] * (len(phones) - CONTESTS_PER_DAY)
              and len(seen) == len(set(seen)) == CONTESTS_PER_DAY and pages >= CONTESTS_PER_DAY // 2)
    return Outcome(passed, figure, (
        f"reports on {len(phones)} numbers never looked up: {never.count(403)} refused (403); a made-up alertId: "
        f"{made_up}; after a lookup: {reported}; {len(phones)} contests with a cap of {CONTESTS_PER_DAY}/day: "
        f"{contests.count(201)} accepted, {contests.count(429)} refused (429); listed in {pages} pages of 2"))


def _streams(ctx: Context, server: Any) -> Outcome:
    from tests.api.abuse_support import wait_alert
    from tests.api.conftest import ScorerOutput

    headers = server.auth("platform-a")
    extra = 5
    scorer = ScorerOutput(server.bootstrap, server.prefix)
    phones = [f"+3162530{i:04d}" for i in range(4)]
    ctx.identifiers.numbers.update(phones)
    try:
        with ExitStack() as stack:
            opened = []
            for _ in range(STREAMS + extra):
                client = stack.enter_context(httpx.Client(base_url=server.base, timeout=20))
                r = stack.enter_context(client.stream("GET", "/v1/alerts:stream", params={"max_seconds": 30},
                                                      headers=headers))
                opened.append(r.status_code)
        with server.client() as c:
            start = c.get("/v1/alerts", params={"limit": 500}, headers=server.auth("telco-a")).json()["nextCursor"]
        backlog = scorer.alert(phones[0], level="critical")
        scorer.flush()
        wait_alert(server, start, backlog.alert_id)

        def first_event(extra_headers: dict[str, str], produce: Callable[[], list[str]]) -> tuple[str, str, list[str]]:
            with httpx.Client(base_url=server.base, timeout=20) as c, c.stream(
                    "GET", "/v1/alerts:stream", params={"max_seconds": 20}, headers={**headers, **extra_headers}) as s:
                ids = produce()
                event_id = ""
                for line in s.iter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        return event_id, json.loads(line[6:])["alertId"], ids
            raise AssertionError("stream ended without an event")

        def raise_one(phone: str) -> list[str]:
            alert_id = scorer.alert(phone, level="critical").alert_id
            scorer.flush()
            return [alert_id]

        first_id, first_alert, live = first_event({}, lambda: raise_one(phones[1]))
        live += raise_one(phones[2])       # raised while the client is away
        _, resumed, _ = first_event({"Last-Event-ID": first_id}, list)
    finally:
        scorer.close()
    figure = {"streams_tried": STREAMS + extra, "cap": STREAMS, "opened": opened.count(200),
              "refused_429": opened.count(429),
              "first_event_is_live": first_alert == live[0], "resumed_after_last_event_id": resumed == live[1]}
    passed = opened == [200] * STREAMS + [429] * extra and first_alert == live[0] and resumed == live[1]
    return Outcome(passed, figure, (
        f"{STREAMS + extra} alert streams on one token (cap {STREAMS}): {opened.count(200)} opened, "
        f"{opened.count(429)} refused (429); a new stream's first event was the first live alert "
        f"({first_alert == live[0]}), not the backlog; Last-Event-ID resumed at the next one ({resumed == live[1]})"))


def run(ctx: Context) -> dict[str, Outcome]:
    from tests.api.abuse_support import guarded_api

    prefix = ctx.rig.new_prefix("abuse")
    tmp = ctx.rig.workdir / "abuse"
    tmp.mkdir(exist_ok=True)
    with ctx.rig.keys_in_environ(), guarded_api(tmp, ctx.rig.bootstrap, prefix, auth_failures_burst=BURST,
                                                auth_failures_per_minute=0.01, streams_max=STREAMS,
                                                contests_per_day=CONTESTS_PER_DAY) as server:
        return run_steps([
            ("abuse_watchlist", lambda: _watchlist(ctx, server)),
            ("abuse_token_lockout", lambda: _lockout(ctx, server)),
            ("abuse_unknown_clients", lambda: _unknown_clients(ctx, server)),
            ("abuse_feedback", lambda: _feedback(ctx, server)),
            ("abuse_streams", lambda: _streams(ctx, server)),
        ])
