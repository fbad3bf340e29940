"""Dockerfile and docker-compose.yml, checked without a Docker engine: parse, pins, user, commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from services.cli import COMMANDS
from tests.deploy.conftest import ROOT

PINNED_TAG = re.compile(r"^[a-z0-9./-]+:(v?\d+\.\d+\.\d+[a-z0-9.-]*)(@sha256:[a-f0-9]{64})?$")


def _dockerfile() -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_dockerfile_base_image_is_pinned_and_slim() -> None:
    lines = _dockerfile()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(lines), flags=re.M))
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert froms, "no FROM"
    for image in froms:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert PINNED_TAG.match(resolved), f"unpinned base image {resolved}"
        assert "slim" in resolved, f"use a slim base image, not {resolved}"


def test_dockerfile_runs_as_non_root_with_the_fraudradar_entrypoint() -> None:
    lines = _dockerfile()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks it)"
    entrypoints = [line for line in lines if line.startswith("ENTRYPOINT ")]
    assert entrypoints[-1] == 'ENTRYPOINT ["fraudradar"]'
    # The chart's podSecurityContext runs as this uid.
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "fraudradar" / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


def test_dockerfile_copies_only_what_exists() -> None:
    for line in _dockerfile():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists() or source == "README.md", f"COPY of missing {source}"


def test_compose_images_are_pinned() -> None:
    for name, service in _compose()["services"].items():
        image = service.get("image")
        assert image, f"{name}: no image"
        assert PINNED_TAG.match(image), f"{name}: unpinned image {image}"


def test_compose_fraudradar_services_run_commands_that_exist() -> None:
    services = _compose()["services"]
    ours = {name: s for name, s in services.items() if s["image"].startswith("fraudradar/")}
    assert {"ingest", "scorer", "api", "topics", "setup"} <= set(ours)
    for name, service in ours.items():
        command = service["command"]
        assert command[0] in COMMANDS, f"{name}: fraudradar has no command {command[0]!r}"
        assert service["user"] == "10001:10001" and service["read_only"] is True, name


def test_compose_kafka_is_the_apache_image() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"


def test_compose_mounts_exist_and_prometheus_scrapes_the_services() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: mount source {source} missing"
    prometheus = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    static = [sc for job in prometheus["scrape_configs"] for sc in job["static_configs"]]
    targets = {t for sc in static for t in sc["targets"]}
    assert targets == {"ingest:9400", "scorer:9400", "api:9400"}  # the API: its operations port
    for target in targets:
        assert target.split(":")[0] in services
    labels = {sc["labels"]["fraudradar_service"] for sc in static}
    assert labels == {"ingest", "scorer", "api"}


def test_dockerignore_keeps_secrets_and_caches_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".cache", "demo-out"):
        assert entry in ignored


def test_compose_rule_and_dashboard_mounts_are_the_project_files() -> None:
    volumes = [v for s in _compose()["services"].values() for v in s.get("volumes", [])]
    assert any(v.startswith("./deploy/prometheus/rules:") for v in volumes)
    assert any(v.startswith("./deploy/grafana/fraudradar.json:") for v in volumes)
    assert Path(ROOT / "deploy" / "grafana" / "fraudradar.json").exists()
