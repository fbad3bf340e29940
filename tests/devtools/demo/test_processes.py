"""The environment the demo gives its child processes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from services.devtools.demo.config import DemoConfig
from services.devtools.demo.processes import Run

ROOT = Path(__file__).resolve().parents[3]


def test_children_get_the_checkout_root_on_their_path_and_the_keys_as_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDRADAR_PSEUDONYM_KEY", "an inline key that must not reach a child")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    run = Run(argparse.Namespace(), tmp_path, "127.0.0.1:9092", "demo-x.", DemoConfig(tmp_path / "config"))
    env = run.env(FRAUDRADAR_HTTP_PORT="1234")
    first, *rest = env["PYTHONPATH"].split(os.pathsep)
    # ``python -m services.cli`` in a child imports from there
    assert Path(first) == ROOT and (Path(first) / "services" / "cli.py").is_file()
    assert rest == ["/elsewhere"]
    assert "FRAUDRADAR_PSEUDONYM_KEY" not in env
    assert env["FRAUDRADAR_PSEUDONYM_KEY_FILE"] == str(tmp_path / "config" / "keys" / "pseudonym.key")
    assert env["FRAUDRADAR_TOPIC_PREFIX"] == "demo-x." and env["FRAUDRADAR_HTTP_PORT"] == "1234"
