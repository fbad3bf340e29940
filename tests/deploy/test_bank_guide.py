"""docs/bank-guide.md runs as written against ``fraudradar demo --serve``.

The guide marks the shell blocks that run against the demo with ``<!-- runs against the demo -->``
on the line before the fence. The slow test serves a short demo, runs those blocks in bash from
the demo's directory exactly as a reader would paste them, checks each answer, then stops the
demo with SIGTERM and checks every process it started has ended. The fast test checks that the
guide's first blocks are the commands the demo prints, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from services.devtools.demo.bank_env import GUIDE_FIRST_COMMANDS
from tests.deploy.conftest import ROOT
from tests.support.demo_run import DemoProcess
from tests.support.procs import alive, descendants

GUIDE = ROOT / "docs" / "bank-guide.md"
MARK = "<!-- runs against the demo -->"
BANK_ENV_VARS = ("API_URL", "CLIENT_ID", "CLIENT_SECRET", "FLAGGED_NUMBER", "CLEAN_NUMBER", "BANK_CLI")


def demo_blocks(text: str) -> list[str]:
    """The bodies of the fenced bash blocks marked to run against the demo, in order."""
    lines = text.splitlines()
    blocks: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        assert lines[i + 1] == "```bash", f"line {i + 2}: {MARK} must sit right above a ```bash fence"
        end = lines.index("```", i + 2)
        blocks.append("\n".join(lines[i + 2:end]))
    return blocks


def test_the_guide_starts_with_the_commands_the_demo_prints() -> None:
    blocks = demo_blocks(GUIDE.read_text())
    assert len(blocks) >= 7, blocks
    assert blocks[0].split("#")[0].strip() == "source demo-out/config/bank.env"
    assert blocks[1].startswith(GUIDE_FIRST_COMMANDS[0])
    assert blocks[2].startswith(GUIDE_FIRST_COMMANDS[1])
    # Nothing the reader runs may depend on a fixed port or a published secret.
    for block in blocks:
        assert "8080" not in block and "secret-local-only" not in block, block


def _answers(stdout: str, count: int) -> list[str]:
    parts = re.split(r"^@@ block (\d+)$", stdout, flags=re.MULTILINE)
    answers = [""] * count
    for index, body in zip(parts[1::2], parts[2::2], strict=True):
        answers[int(index)] = body.strip()
    return answers


def _json(text: str) -> Any:
    return json.loads(text)


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(480)
def test_guide_runs_as_written_against_a_served_demo(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    kafka_bootstrap: str = request.getfixturevalue("kafka_bootstrap")
    demo = DemoProcess(["--serve", "--minutes", "0.5", "--subscribers", "3000", "--sim-duration", "1h",
                        "--out", "demo-out", "--bootstrap", kafka_bootstrap], cwd=tmp_path)
    try:
        assert demo.wait_for("services keep running", 400), demo.output[-4000:]
        started = descendants(demo.proc.pid)
        output = demo.output
        # the whole pipeline ran and the API tour got real answers
        for expected in ("injected fraud vs flagged", "/oauth2/token (client demo-bank) -> 200",
                         "(alerts about watched numbers) -> 200", "report: "):
            assert expected in output, output[-4000:]
        for unexpected in ("not available yet", "did NOT become ready"):
            assert unexpected not in output, output[-4000:]
        assert (tmp_path / "demo-out" / "report" / "report.html").exists()
        # the flagged number is shown in full, so the reader can repeat the lookup
        assert re.search(r'numbers:lookup \{"phoneNumber": "\+316\d{8}"\} -> 200', output), output[-4000:]

        # bank.env: its variables, readable by its owner only (it holds the secret)
        bank_env = tmp_path / "demo-out" / "config" / "bank.env"
        assert stat.S_IMODE(bank_env.stat().st_mode) == 0o600
        values = dict(re.findall(r"^export (\w+)=(\S+)$", bank_env.read_text(), flags=re.MULTILINE))
        assert set(values) == set(BANK_ENV_VARS), values
        assert re.fullmatch(r"'?\+316\d{8}'?", values["FLAGGED_NUMBER"]), values
        assert re.fullmatch(r"'?\+316\d{8}'?", values["CLEAN_NUMBER"]), values
        # the demo printed the guide's first commands, verbatim
        assert "source demo-out/config/bank.env" in output
        for command in GUIDE_FIRST_COMMANDS:
            assert command in output

        blocks = demo_blocks(GUIDE.read_text())
        script = "set -euo pipefail\n" + "".join(f"echo '@@ block {i}'\n{block}\necho\n"
                                                 for i, block in enumerate(blocks))
        env = {k: v for k, v in os.environ.items() if k not in BANK_ENV_VARS and k != "TOKEN"}
        ran = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120, check=False)
        assert ran.returncode == 0, f"{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}"
        assert ran.stderr == "", ran.stderr[-3000:]
        answers = _answers(ran.stdout, len(blocks))
        checked = 0
        for block, answer in zip(blocks, answers, strict=True):
            if not answer:
                assert "curl" not in block or block.startswith("TOKEN="), f"no answer to:\n{block}"
                continue
            body = _json(answer)
            assert not {"status", "code"} <= set(body), f"{block}\n-> {answer}"  # a CAMARA error body
            if "numbers:lookup" in block and "$FLAGGED_NUMBER" in block:
                assert body["signal"] is True, answer
            elif "numbers:lookup" in block and "$CLEAN_NUMBER" in block:
                assert body == {"signal": False, "level": "none"}, answer
            elif "numbers:batch" in block:
                assert [r["result"]["signal"] for r in body["results"]] == [True, False], answer
            elif "watchlist/entries" in block:
                assert body["reference"] == "customer-1234" and body["entityType"] == "number", answer
            elif "/v1/alerts" in block:
                assert "alerts" in body and "nextCursor" in body, answer
            elif "pre-announce" in block:         # from the demo bank's registered number
                assert set(body) == {"preAnnouncementId", "expiresAt"}, answer
            elif "/kyc-tenure/" in block:
                assert set(body) == {"simSwapped72h", "callForwardings", "tenure90Days", "decision"}, answer
                assert body["decision"] in ("allow", "step-up") and body["callForwardings"], answer
            else:
                raise AssertionError(f"the test does not know what to expect from:\n{block}")
            checked += 1
        assert checked >= 5, answers
    finally:
        if demo.proc.poll() is None:
            demo.proc.send_signal(signal.SIGTERM)
        code = demo.finish(120)

    # SIGTERM stopped the demo and every process it had started (ingest, scorer, api)
    assert code == 128 + signal.SIGTERM, demo.output[-3000:]
    assert "stopped on SIGTERM" in demo.output
    assert len(started) >= 3, started
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in started if alive(pid)]
