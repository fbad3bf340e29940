"""docs/openapi.json is the published contract: it must be what the app generates today."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from services.api.app import create_app
from services.api.config import ApiSettings

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
SPECS = Path(__file__).resolve().parent / "specs"   # vendored CAMARA releases


def test_published_openapi_is_current() -> None:
    generated = create_app(ApiSettings()).openapi()
    published = json.loads(PUBLISHED.read_text())
    hint = "docs/openapi.json is stale: run  fraudradar api --print-openapi > docs/openapi.json"
    assert published == generated, hint


def test_no_phone_number_in_any_url() -> None:
    doc = create_app(ApiSettings()).openapi()
    for path, item in doc["paths"].items():
        for operation in item.values():
            for param in operation.get("parameters", []):
                assert "phone" not in param["name"].lower() and "imei" not in param["name"].lower(), path
        assert "phone" not in path.lower()


def test_every_operation_declares_errors_and_scopes() -> None:
    doc = create_app(ApiSettings()).openapi()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if path.startswith("/oauth2/"):
                continue
            assert operation.get("security"), (method, path)
            assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)


def test_the_specs_are_vendored_with_their_licence() -> None:
    for name in ("camara-call-forwarding-signal-v0.4.0.yaml", "camara-kyc-tenure-v0.2.0.yaml",
                 "camara-number-recycling-v0.2.0.yaml"):
        info = yaml.safe_load((SPECS / name).read_text())["info"]
        assert info["license"]["name"] == "Apache 2.0" and info["version"] in name
    assert (SPECS / "README.md").read_text().count("Apache-2.0") >= 6
