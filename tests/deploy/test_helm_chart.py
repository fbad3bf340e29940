"""The Helm chart: lint, render, validate against offline Kubernetes schemas, and its promises.

Each values file in deploy/helm/fraudradar/ci/ is one way to connect to Kafka (Strimzi SCRAM,
Strimzi mTLS, managed SASL/PLAIN); every test that renders runs on all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, KUBE_VERSION, ROOT, RULES_DIR, run

SCRAM = CHART / "ci" / "strimzi-scram-values.yaml"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def render(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run([helm, "template", "fr", str(CHART), "--namespace", "fraud",
                "--kube-version", KUBE_VERSION, *args])


def docs(helm: str, values: Path, *args: str) -> list[dict[str, Any]]:
    proc = render(helm, "-f", str(values), *args)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def kubeconform_run(kubeconform: str, schemas: Path, manifests: str) -> dict[str, Any]:
    # kubeconform's own Go template for where a kind's schema file is.
    location = str(schemas) + (
        "/{{.NormalizedKubernetesVersion}}-local{{.StrictSuffix}}/{{.ResourceKind}}{{.KindSuffix}}.json")
    proc = run([kubeconform, "-strict", "-summary", "-output", "json", "-ignore-missing-schemas",
                "-kubernetes-version", KUBE_VERSION, "-schema-location", location, "-"], input=manifests)
    report: dict[str, Any] = json.loads(proc.stdout)
    report["returncode"] = proc.returncode
    return report


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_helm_lint_strict(helm: str, values: Path) -> None:
    proc = run([helm, "lint", "--strict", str(CHART), "-f", str(values), "--kube-version", KUBE_VERSION])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_rendered_manifests_pass_kubeconform_strict(helm: str, kubeconform: str, k8s_schemas: Path,
                                                    values: Path) -> None:
    proc = render(helm, "-f", str(values))
    assert proc.returncode == 0, proc.stderr
    report = kubeconform_run(kubeconform, k8s_schemas, proc.stdout)
    summary = report["summary"]
    assert report["returncode"] == 0 and summary["invalid"] == 0 and summary["errors"] == 0, report
    # Only the Prometheus-operator CRDs may lack a schema; anything else skipped means the
    # schema location is broken and nothing was really checked.
    crds = sum(1 for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] in CRD_KINDS)
    assert summary["skipped"] == crds
    assert summary["valid"] >= 10


def test_kubeconform_really_rejects_a_bad_manifest(helm: str, kubeconform: str, k8s_schemas: Path) -> None:
    manifests = docs(helm, CI_VALUES[0])
    deployment = next(d for d in manifests if d["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "two"
    deployment["spec"]["template"]["spec"]["bogusField"] = True
    report = kubeconform_run(kubeconform, k8s_schemas, yaml.safe_dump(deployment))
    assert report["returncode"] != 0 and report["summary"]["invalid"] == 1


@pytest.mark.parametrize(("override", "message"), [
    (["--set", "scorer.replicas=three"], "scorer/replicas"),
    (["--set", "kafka.securityProtocol=TLS"], "securityProtocol"),
    (["--set", "kafka.sasl.mechanism=GSSAPI"], "mechanism"),
    (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
    (["--set", "ingest.port=70000"], "ingest/port"),
    (["--set", "unknownKey=1"], "unknownKey"),
    (["--set", "kafka.bootstrap=not a host"], "bootstrap"),
    (["--set", "podSecurityContext.runAsNonRoot=false"], "runAsNonRoot"),
    (["--set", "api.hpa.targetCPUUtilizationPercentage=0"], "targetCPUUtilizationPercentage"),
    (["--set", "monitoring.serviceMonitor.interval=often"], "interval"),
    (["--set", "api.webhookDelivery.replicas=0"], "webhookDelivery/replicas"),
    (["--set", "api.limitsDivisor=0"], "limitsDivisor"),
    # the scorer's old scratch volume (nothing read it): refused rather than silently ignored
    (["--set", "scorer.stateVolume.sizeLimit=2Gi"], "stateVolume"),
    (["--set", "protectedNumbers.key=lists/numbers.csv"], "protectedNumbers/key"),
])
def test_values_schema_rejects_bad_values(helm: str, override: list[str], message: str) -> None:
    proc = render(helm, "-f", str(CI_VALUES[0]), *override)
    assert proc.returncode != 0
    assert "schema" in proc.stderr and message in proc.stderr, proc.stderr


@pytest.mark.parametrize(("override", "message"), [
    (["--set", "scorer.replicas=7"], "larger than kafka.topics.partitions"),
    (["--set", "kafka.bootstrap="], "kafka.bootstrap is required"),
    (["--set", "keys.existingSecret="], "keys.existingSecret is required"),
    (["--set", "kafka.sasl.passwordSecret.name="], "passwordSecret.name is required"),
    (["--set", "api.hpa.maxReplicas=1"], "maxReplicas must be at least"),
])
def test_templates_refuse_inconsistent_values(helm: str, override: list[str], message: str) -> None:
    proc = render(helm, "-f", str(CI_VALUES[-1]), *override)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def _pod_specs(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for d in manifests:
        if d["kind"] in {"Deployment", "StatefulSet", "Job"}:
            out[d["metadata"]["name"]] = d["spec"]["template"]["spec"]
    return out


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_every_pod_is_locked_down(helm: str, values: Path) -> None:
    for name, spec in _pod_specs(docs(helm, values)).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name
            if name.endswith("-topics"):
                continue
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name


def test_component_shapes(helm: str) -> None:
    manifests = docs(helm, SCRAM)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in manifests:
        by_kind.setdefault(d["kind"], []).append(d)
    scorer = next(d for d in by_kind["StatefulSet"] if d["metadata"]["name"] == "fr-fraudradar-scorer")
    assert scorer["spec"]["replicas"] == 6
    env = {e["name"]: e for e in scorer["spec"]["template"]["spec"]["containers"][0]["env"]}
    # Static membership: the stable pod name is the group instance id.
    assert env["FRAUDRADAR_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["FRAUDRADAR_POLICY_FILE"]["value"].endswith("policy.yaml")
    # state lives in memory and in fraudradar.scorer-state: no state directory, no state volume
    assert not [name for name in env if "STATE" in name]
    mounts = {m["mountPath"] for m in scorer["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts == {"/etc/fraudradar/keys", "/etc/fraudradar/policy", "/etc/fraudradar/kafka-ca", "/tmp"}
    # Least privilege: the scorer never sees the disclosure key.
    assert "FRAUDRADAR_DISCLOSURE_KEY_FILE" not in env
    keys = next(v for v in scorer["spec"]["template"]["spec"]["volumes"] if v["name"] == "keys")
    assert [i["path"] for i in keys["secret"]["items"]] == ["pseudonym.key"]
    # Kafka over SASL_SSL with the password from a Secret and the Strimzi cluster CA.
    assert env["FRAUDRADAR_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["FRAUDRADAR_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "fraudradar"
    assert env["FRAUDRADAR_KAFKA_SSL_CAFILE"]["value"] == "/etc/fraudradar/kafka-ca/ca.crt"

    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    assert set(deployments) == {"fr-fraudradar-ingest", "fr-fraudradar-api"}
    hpa = by_kind["HorizontalPodAutoscaler"][0]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "fr-fraudradar-api"
    assert "replicas" not in deployments["fr-fraudradar-api"]["spec"], "the HPA owns the API's replica count"
    assert {d["metadata"]["name"] for d in by_kind["PodDisruptionBudget"]} == {
        "fr-fraudradar-ingest", "fr-fraudradar-scorer", "fr-fraudradar-api"}
    config_maps = {d["metadata"]["name"] for d in by_kind["ConfigMap"]}
    assert config_maps >= {"fr-fraudradar-policy", "fr-fraudradar-partners"}
    assert len(by_kind["NetworkPolicy"]) == 5
    job = by_kind["Job"][0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["topics", "ensure"]


def test_webhooks_are_delivered_by_a_fixed_statefulset_not_the_autoscaled_pods(helm: str) -> None:
    manifests = docs(helm, SCRAM, "--set", "api.webhookDelivery.replicas=3", "--set", "api.limitsDivisor=4")
    api = next(d for d in manifests if d["kind"] == "Deployment" and d["metadata"]["name"] == "fr-fraudradar-api")
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FRAUDRADAR_WEBHOOK_DELIVERY"]["value"] == "false"
    assert "FRAUDRADAR_REPLICA_COUNT" not in env
    assert env["FRAUDRADAR_LIMITS_DIVISOR"]["value"] == "4"
    sts = next(d for d in manifests
               if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "fr-fraudradar-api-webhooks")
    assert sts["spec"]["replicas"] == 3
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FRAUDRADAR_WEBHOOK_DELIVERY"]["value"] == "true"
    assert env["FRAUDRADAR_REPLICA_COUNT"]["value"] == "3"
    # the ordinal at the end of the pod name is the delivery index
    assert env["FRAUDRADAR_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    hpa = next(d for d in manifests if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "fr-fraudradar-api"}
    # the delivery pods are not behind the partner-facing Service
    services = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "Service"}
    assert services["fr-fraudradar-api"]["spec"]["selector"]["app.kubernetes.io/component"] == "api"
    assert services["fr-fraudradar-api-webhooks"]["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == "fr-fraudradar-api-webhooks"


def test_mtls_client_certificate_is_mounted(helm: str) -> None:
    manifests = docs(helm, CHART / "ci" / "strimzi-mtls-values.yaml")
    ingest = next(d for d in manifests
                  if d["metadata"]["name"] == "fr-fraudradar-ingest" and d["kind"] == "Deployment")
    spec = ingest["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["FRAUDRADAR_KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert env["FRAUDRADAR_KAFKA_SSL_CERTFILE"] == "/etc/fraudradar/kafka-client/tls.crt"
    assert "FRAUDRADAR_KAFKA_SASL_PASSWORD" not in env
    client = next(v for v in spec["volumes"] if v["name"] == "kafka-client")
    assert client["secret"]["secretName"] == "fraudradar"
    assert not any(d["kind"] == "Job" for d in manifests), "topics.create=false renders no Job"
    assert any(d["kind"] == "Ingress" for d in manifests)


PROTECTED_FILE = "FRAUDRADAR_PROTECTED_NUMBERS_FILE"
READERS_OF_PROTECTED_NUMBERS = ("fr-fraudradar-ingest", "fr-fraudradar-api", "fr-fraudradar-api-webhooks")


def _protected_numbers_source(spec: dict[str, Any]) -> tuple[str, str] | None:
    """(ConfigMap name, key) the pod's FRAUDRADAR_PROTECTED_NUMBERS_FILE is read from, followed
    from the env value through the container's mount to the pod's volume; None without the env."""
    container = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    if PROTECTED_FILE not in env:
        return None
    path = Path(env[PROTECTED_FILE])
    mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent)
    assert mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    item = next(i for i in volume["configMap"]["items"] if i["path"] == path.name)
    return volume["configMap"]["name"], item["key"]


def test_protected_numbers_reach_ingest_and_the_api(helm: str) -> None:
    from services.common.protected_numbers import ProtectedNumbers

    manifests = docs(helm, SCRAM)
    pods = _pod_specs(manifests)
    config_maps = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "ConfigMap"}
    for name in READERS_OF_PROTECTED_NUMBERS:
        source = _protected_numbers_source(pods[name])
        assert source is not None, f"{name} has no {PROTECTED_FILE}"
        config_map, key = source
        assert config_map == "fr-fraudradar-protected-numbers", name
        # what the pod reads is the values' CSV, and the services' own parser accepts it
        parsed = ProtectedNumbers.parse(config_maps[config_map]["data"][key])
        assert parsed.owners == {"+31201234567": "bank-a", "+31800123456": "dno"}
    # the scorer sees only pseudonyms and owner ids: it never gets the list
    assert _protected_numbers_source(pods["fr-fraudradar-scorer"]) is None


def test_protected_numbers_change_rolls_the_pods(helm: str, tmp_path: Path) -> None:
    other = tmp_path / "protected.csv"
    other.write_text("number,owner\n+31201234567,bank-b\n")

    def checksums(*args: str) -> dict[str, str]:
        return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/protected-numbers"]
                for d in docs(helm, SCRAM, *args)
                if d["kind"] in {"Deployment", "StatefulSet"} and d["metadata"]["name"] in READERS_OF_PROTECTED_NUMBERS}

    before, after = checksums(), checksums("--set-file", f"protectedNumbers.csv={other}")
    assert set(before) == set(READERS_OF_PROTECTED_NUMBERS)
    assert all(before[name] != after[name] for name in before)


def test_protected_numbers_from_an_existing_config_map(helm: str) -> None:
    manifests = docs(helm, SCRAM, "--set", "protectedNumbers.existingConfigMap=bank-numbers",
                     "--set", "protectedNumbers.key=numbers.csv")
    pods = _pod_specs(manifests)
    for name in READERS_OF_PROTECTED_NUMBERS:
        assert _protected_numbers_source(pods[name]) == ("bank-numbers", "numbers.csv"), name
    assert not any(d["kind"] == "ConfigMap" and d["metadata"]["name"] == "fr-fraudradar-protected-numbers"
                   for d in manifests), "an existing ConfigMap wins over the chart's own"


def test_no_protected_numbers_means_no_file(helm: str) -> None:
    manifests = docs(helm, CHART / "ci" / "managed-plain-values.yaml")
    pods = _pod_specs(manifests)
    for name in READERS_OF_PROTECTED_NUMBERS:
        assert _protected_numbers_source(pods[name]) is None, name
        assert not any(v["name"] == "protected-numbers" for v in pods[name]["volumes"]), name


def test_prometheus_rules_in_the_chart_are_the_tested_ones(helm: str) -> None:
    proc = run([sys.executable, str(ROOT / "deploy" / "tools" / "sync_chart_files.py"), "--check"])
    assert proc.returncode == 0, proc.stderr
    rendered = {d["metadata"]["name"]: d["spec"] for d in docs(helm, SCRAM)
                if d["kind"] == "PrometheusRule"}
    for path in sorted(RULES_DIR.glob("*.yml")):
        assert rendered[f"fr-fraudradar-{path.stem}"] == yaml.safe_load(path.read_text()), path.name


def test_service_monitor_keeps_the_metrics_service_label(helm: str) -> None:
    monitor = next(d for d in docs(helm, SCRAM) if d["kind"] == "ServiceMonitor")
    relabel = monitor["spec"]["endpoints"][0]["relabelings"]
    assert {"action": "labeldrop", "regex": "service"} in relabel
    assert any(r.get("targetLabel") == "fraudradar_service" for r in relabel)
