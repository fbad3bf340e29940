"""The operations docs stay true to the code: every setting documented, every topic explained."""

from __future__ import annotations

import importlib

import pytest

from services.common.topics import default_specs
from tests.deploy.conftest import ROOT

SETTINGS = [
    ("services.common.config", "CommonSettings"),
    ("services.ingest.service", "IngestSettings"),
    ("services.api.config", "ApiSettings"),
    ("services.scorer.settings", "ScorerSettings"),
]


@pytest.mark.parametrize(("module", "name"), SETTINGS)
def test_every_setting_is_in_the_configuration_reference(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)     # a broken import fails here
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [f"FRAUDRADAR_{field.upper()}" for field in cls.model_fields
               if f"`FRAUDRADAR_{field.upper()}`" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_architecture_names_every_topic() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    for spec in default_specs():
        assert f"`{spec.suffix}`" in text, spec.suffix


def test_privacy_notes_cover_every_topic() -> None:
    text = (ROOT / "docs" / "privacy.md").read_text()
    for spec in default_specs():
        assert f"`{spec.suffix}`" in text, spec.suffix
