"""Issue #21: the chart exposes only the partner routes of the API. The Ingress routes the
partner paths to the Service's "partner" port; /metrics and the probes are on the "http"
(operations) port, which no Ingress path reaches; the network policy keeps the two apart."""

from __future__ import annotations

from typing import Any

from tests.deploy.test_helm_chart import CI_VALUES, docs

PARTNER_PATHS = {"/v1/", "/oauth2/", "/.well-known/", "/sim-swap/", "/device-swap/", "/openapi.json"}


def _by(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in manifests if d["kind"] == kind and d["metadata"]["name"] == name)


def test_ingress_routes_only_partner_paths_to_the_partner_port(helm: str) -> None:
    values = next(v for v in CI_VALUES if "ingress" in v.read_text())
    manifests = docs(helm, values)
    ingress = _by(manifests, "Ingress", "fr-fraudradar-api")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["path"] for p in paths} == PARTNER_PATHS
    assert {p["backend"]["service"]["port"]["name"] for p in paths} == {"partner"}
    service = _by(manifests, "Service", "fr-fraudradar-api")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["partner"]["port"] == 8080 and ports["http"]["port"] == 9400
    pod = _by(manifests, "Deployment", "fr-fraudradar-api")["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in pod["ports"]} == {"partner": 8080, "http": 9400}
    env = {e["name"]: e.get("value") for e in pod["env"]}
    assert env["FRAUDRADAR_HTTP_PORT"] == "9400" and env["FRAUDRADAR_API_PORT"] == "8080"
    assert pod["readinessProbe"]["httpGet"]["port"] == "http"
    policy = _by(manifests, "NetworkPolicy", "fr-fraudradar-api")
    ingress_ports = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert sorted(ingress_ports) == [8080, 9400]
