"""The API tour: real answers of the running API to the demo bank (token → lookups → watch-list
→ alert feed), and the two numbers it found for bank.env."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import httpx

from services.devtools.demo.config import pseudonymizer
from services.devtools.demo.console import say
from services.devtools.demo.processes import Run


@dataclass
class TourNumbers:
    """The numbers the tour looked up, for bank.env: one flagged, one without a flag."""

    flagged: str | None = None
    clean: str | None = None


def api_tour(run: Run, alerts: list[Any]) -> TourNumbers:
    """Token → lookup of a flagged and a clean number → watch the flagged one → the bank's alert
    feed, against the running API. The numbers are shown in full: the demo's numbers are
    simulated, and the point is that the reader can repeat the lookups (docs/bank-guide.md)."""
    numbers = TourNumbers()
    api = run.services.get("api")
    if api is None or not api.running:
        say("\napi is not running (see its log): skipping the API tour")
        return numbers
    base = f"http://127.0.0.1:{api.port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        token_resp = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                 auth=(run.config.client_id, run.config.client_secret))
        say(f"\nPOST {base}/oauth2/token (client {run.config.client_id}) -> {token_resp.status_code}")
        if token_resp.status_code != 200:
            say(f"  {token_resp.text[:300]}")
            return numbers
        granted = token_resp.json()
        say(f"  scope: {granted.get('scope')}  expires_in: {granted.get('expires_in')}s")
        headers = {"Authorization": f"Bearer {granted['access_token']}", "x-correlator": "demo-1"}
        number = flagged_number(run, alerts)
        if number is None:
            say("no flagged number found in the truth file: skipping the lookup")
        else:
            resp = client.post("/v1/risk/numbers:lookup", json={"phoneNumber": number}, headers=headers)
            say(f"POST /v1/risk/numbers:lookup {{\"phoneNumber\": \"{number}\"}} -> {resp.status_code}")
            say("  " + json.dumps(resp.json(), indent=2).replace("\n", "\n  ")[:1500])
            if resp.status_code == 200 and resp.json().get("signal"):
                numbers.flagged = number
            # A bank's feed carries alerts about the numbers it watches: put this one on the list.
            watch = client.post("/v1/watchlist/entries", json={"phoneNumber": number, "reference": "demo-customer-1"},
                                headers=headers)
            say(f"POST /v1/watchlist/entries {{\"phoneNumber\": \"{number}\"}} -> {watch.status_code}")
        for candidate in clean_candidates(run, alerts):
            resp = client.post("/v1/risk/numbers:lookup", json={"phoneNumber": candidate}, headers=headers)
            if resp.status_code == 200 and resp.json().get("signal") is False:
                say(f"POST /v1/risk/numbers:lookup {{\"phoneNumber\": \"{candidate}\"}} -> {resp.status_code} "
                    f"{json.dumps(resp.json())}   (a subscriber without a flag)")
                numbers.clean = candidate
                break
        feed = client.get("/v1/alerts", params={"limit": 3}, headers=headers)
        say(f"GET /v1/alerts?limit=3 (alerts about watched numbers) -> {feed.status_code}")
        say("  " + json.dumps(feed.json(), indent=2).replace("\n", "\n  ")[:2000])
    return numbers


def flagged_number(run: Run, alerts: list[Any]) -> str | None:
    """A plaintext number behind a flagged pseudonym: the demo knows the truth file and the key."""
    truth_path = run.out / "live" / "truth.jsonl"
    if not truth_path.exists():
        return None
    flagged = {a.entity for a in alerts if a.entity_type == "number"}
    pseudonymize = pseudonymizer(run.config)
    from services.common.normalise import IdentifierError, normalise_number

    for line in truth_path.read_text().splitlines():
        row = json.loads(line)
        if row["entity_type"] != "number" or row.get("label") == "negative":
            continue  # a flagged hard negative is a false alarm, not the fraud number to show
        with suppress(IdentifierError):
            normalised = normalise_number(str(row["identifier"]), "NL", allow_alphanumeric=True).value
            if normalised.startswith("+") and pseudonymize("msisdn", normalised) in flagged:
                return normalised
    return None


def clean_candidates(run: Run, alerts: list[Any], limit: int = 5) -> Iterator[str]:
    """Numbers of ordinary subscribers: senders in the simulated traffic that are neither in the
    truth file (injected fraud) nor behind any alert. The tour keeps the first the API answers
    ``signal: false`` for."""
    events_path = run.out / "traffic" / "events.jsonl"
    truth_path = run.out / "live" / "truth.jsonl"
    if not events_path.exists():
        return
    from services.common.normalise import IdentifierError, normalise_number

    pseudonymize = pseudonymizer(run.config)
    alerted = {a.entity for a in alerts if a.entity_type == "number"}
    fraud: set[str] = set()
    if truth_path.exists():
        for line in truth_path.read_text().splitlines():
            row = json.loads(line)
            if row["entity_type"] == "number":
                with suppress(IdentifierError):
                    fraud.add(normalise_number(str(row["identifier"]), "NL", allow_alphanumeric=True).value)
    given = 0
    with events_path.open() as events:
        for line in events:
            sender = json.loads(line).get("a_number")
            if not isinstance(sender, str):
                continue
            with suppress(IdentifierError):
                number = normalise_number(sender, "NL").value
                if (number.startswith("+316") and number not in fraud
                        and pseudonymize("msisdn", number) not in alerted):
                    yield number
                    given += 1
                    if given >= limit:
                        return
