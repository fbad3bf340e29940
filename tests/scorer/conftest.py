"""Fixtures of the scorer's restore tests (the models' journal, commit markers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.records import View
from services.devtools.synthetic import Generator


@pytest.fixture(scope="module")
def views() -> list[View]:
    """A synthetic stream: 400 normal numbers over 4 h, fraud from hour 2 (11,514 views)."""
    return Generator(seed=3).stream(normal=400, hours=4, fraud_start_h=2).views


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    """The packaged policy with models warm after 200 learned points (the stream has ~660)."""
    text = Path("services/scorer/policy.yaml").read_text()
    assert "warmup: 3000" in text
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace("warmup: 3000", "warmup: 200"))
    return path
