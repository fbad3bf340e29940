"""``<out>/config/bank.env`` and the first commands of docs/bank-guide.md that run against it."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from services.devtools.demo.config import DEMO_BANK_CLI
from services.devtools.demo.console import say, shown_path
from services.devtools.demo.processes import Run
from services.devtools.demo.tour import TourNumbers

BANK_ENV = "bank.env"
# The first commands of docs/bank-guide.md after ``source bank.env`` (tests/deploy/test_bank_guide.py
# checks the guide's blocks start with them): the demo prints them after writing bank.env, so
# what it prints and what the guide says cannot differ.
GUIDE_FIRST_COMMANDS = (
    """TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \\
     -d purpose=dpv:FraudPreventionAndDetection "$API_URL/oauth2/token" \\
     | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')""",
    "curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n"
    '     -d "{\\"phoneNumber\\": \\"$FLAGGED_NUMBER\\"}" "$API_URL/v1/risk/numbers:lookup"',
)


def write_bank_env(run: Run, numbers: TourNumbers) -> Path | None:
    """``<out>/config/bank.env``: what docs/bank-guide.md's commands read (mode 0600: a secret)."""
    api = run.services.get("api")
    if api is None:
        return None
    values = {
        "API_URL": f"http://127.0.0.1:{api.port}",
        "CLIENT_ID": run.config.client_id,
        "CLIENT_SECRET": run.config.client_secret,
        "FLAGGED_NUMBER": numbers.flagged or "",
        "CLEAN_NUMBER": numbers.clean or "",
        # the demo bank's registered caller number (config/protected-numbers.csv): it may
        # pre-announce calls from it, and a call showing it unannounced from abroad is a spoof
        "BANK_CLI": DEMO_BANK_CLI,
    }
    text = ("# Written by `fraudradar demo`: the demo API and its demo bank, for docs/bank-guide.md.\n"
            "# Valid while that demo's API runs (`fraudradar demo --serve`); every run writes it anew.\n"
            "# FLAGGED_NUMBER is a simulated fraud number the scorer flagged, CLEAN_NUMBER a simulated\n"
            "# subscriber without a flag.\n"
            + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items()))
    path = run.config.root / BANK_ENV
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def print_guide_start(bank_env: Path, numbers: TourNumbers, serving: bool) -> None:
    for name, value in (("FLAGGED_NUMBER", numbers.flagged), ("CLEAN_NUMBER", numbers.clean)):
        if value is None:
            say(f"\nnote: this run found no number for {name} (see the tour above): it is empty in {bank_env.name}")
    say("\nthe bank guide (docs/bank-guide.md) runs against this demo; its first commands:\n")
    say(f"source {shlex.quote(shown_path(bank_env))}")
    for command in GUIDE_FIRST_COMMANDS:
        say(command)
    if not serving:
        say("(the API stops with this run: `fraudradar demo --serve` keeps it up for the guide)")
