"""bank.env: what docs/bank-guide.md reads, written as a secret."""

from __future__ import annotations

import argparse
import stat
import subprocess
from pathlib import Path

from services.devtools.demo.bank_env import write_bank_env
from services.devtools.demo.config import DemoConfig
from services.devtools.demo.processes import Run, Service
from services.devtools.demo.tour import TourNumbers


def test_bank_env_is_private_and_sources_back_to_the_values(tmp_path: Path) -> None:
    config = DemoConfig(tmp_path, client_secret="s3cr'et $x")
    config.root.mkdir(exist_ok=True)
    run = Run(argparse.Namespace(), tmp_path, "b:9092", "demo-x.", config)
    assert write_bank_env(run, TourNumbers()) is None            # no API: nothing to point at
    run.services["api"] = Service("api", "services.api.cli", [], 8123, {}, tmp_path / "api.log")
    path = write_bank_env(run, TourNumbers(flagged="+31612345678"))
    assert path is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = subprocess.run(["bash", "-c", f'source "{path}"; printf "%s|" "$API_URL" "$CLIENT_ID" "$CLIENT_SECRET" '
                            '"$FLAGGED_NUMBER" "$CLEAN_NUMBER"'], capture_output=True, text=True, check=True).stdout
    assert shown == "http://127.0.0.1:8123|demo-bank|s3cr'et $x|+31612345678||"
