"""deploy/kubernetes/, rendered as kustomize would (tests/ops/kustomize_render.py) and every
document validated offline against a pinned Kubernetes version's schemas (kubernetes-validate,
strict: an unknown field is an error); then what the schemas cannot say: replicas, probes,
budgets, policies, non-root, read-only roots and secrets only referenced."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from servicekit import services
from tests.ops.kustomize_render import (
    UnsupportedKustomization,
    containers,
    pod_spec,
    render,
)
from tests.plugins.processes import REPO_ROOT

KUBERNETES_VERSION = "1.32.0"
KUBERNETES = REPO_ROOT / "deploy/kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays/production"
SERVICE_SOURCES = ("broker", "notifier", "servicekit")


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render(PRODUCTION)


@pytest.mark.parametrize("folder", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_document_is_valid_for_the_pinned_kubernetes(folder: Path) -> None:
    documents = render(folder)
    assert len(documents) >= 14
    for document in documents:
        name = f"{document['kind']}/{document['metadata']['name']}"
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as invalid:
            pytest.fail(f"{folder.relative_to(REPO_ROOT)}: {name}: {invalid.message} "
                        f"at {'.'.join(map(str, invalid.path))}")


def test_the_validation_can_fail() -> None:
    """An unknown field and a wrong type are refused (strict), so passing means something."""
    deployment = next(d for d in render(BASE) if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    pod["containers"][0]["readinessProbe"]["grpc"]["serviceName"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    del pod["containers"][0]["readinessProbe"]["grpc"]["serviceName"]
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_renderer_refuses_what_it_would_not_apply(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\npatches:\n  - path: x.yaml\n")
    with pytest.raises(UnsupportedKustomization, match="patches"):
        render(tmp_path)


def test_three_deployments_of_two_or_more_each_with_a_disruption_budget(production) -> None:
    deployments = by_kind(production, "Deployment")
    assert set(deployments) == {"zoho-broker", "zoho-notifier", "zoho-ingress"}
    budgets = by_kind(production, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] >= 2, name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets.values()
                    if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert [b["spec"]["minAvailable"] for b in covering] == [1], name
    ingress = deployments["zoho-ingress"]["spec"]["template"]["spec"]["containers"][0]
    assert ingress["command"] == ["zoho-notifier", "ingress"]


def test_grpc_probes_name_the_services(production) -> None:
    expected = {"zoho-broker": (50051, services.BROKER_SERVICE_NAME),
                "zoho-notifier": (50052, services.NOTIFIER_SERVICE_NAME)}
    deployments = by_kind(production, "Deployment")
    for name, (port, service) in expected.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["grpc"] == {"port": port, "service": service}
        # Liveness asks the whole server: the notifier's service is NOT_SERVING while the
        # broker is down, and that must take it out of rotation, not restart it.
        assert container["livenessProbe"]["grpc"] == {"port": port, "service": ""}


def test_only_the_ingress_faces_the_internet(production) -> None:
    exposed = {name for name, service in by_kind(production, "Service").items()
               if service["spec"].get("type", "ClusterIP") in ("LoadBalancer", "NodePort")}
    assert exposed == {"zoho-ingress"}
    policies = by_kind(production, "NetworkPolicy")
    public = {name for name, policy in policies.items()
              for rule in policy["spec"].get("ingress", []) for peer in rule.get("from", [])
              if "ipBlock" in peer}
    assert public == {"zoho-ingress"}
    broker_callers = [peer for rule in policies["zoho-broker"]["spec"]["ingress"]
                      for peer in rule["from"] if "podSelector" in peer]
    assert broker_callers == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "zoho-notifier"}}}]
    deny_all = policies["zoho-connect-default-deny"]["spec"]
    assert deny_all["policyTypes"] == ["Ingress"] and "ingress" not in deny_all


def test_pods_run_as_non_root_on_read_only_roots(production) -> None:
    for document in production:
        spec = pod_spec(document)
        if spec is None:
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec.get("initContainers", []) + spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            for mount in container.get("volumeMounts", []):
                assert "emptyDir" in volumes[mount["name"]], mount
            assert container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]


def test_secrets_are_referenced_never_embedded(production) -> None:
    assert by_kind(production, "Secret") == {}
    sources = "\n".join(
        path.read_text() for package in SERVICE_SOURCES
        for path in (REPO_ROOT / package).rglob("*.py")
    )
    for container in containers(production):
        for variable in container.get("env", []):
            name = variable["name"]
            # Every variable set is one the services read (a typo would be ignored silently).
            assert re.search(rf"[\"']{name}[\"']", sources), name
            if re.search(r"KEY|SECRET|DATABASE_URL|CLIENT_ID", name):
                assert "value" not in variable, f"{name} is embedded"
                assert "secretKeyRef" in variable["valueFrom"], name


def test_the_overlay_sets_the_image_and_namespace(production) -> None:
    for container in containers(production):
        assert container["image"] == "registry.example.com/zoho-connect:0.1.0"
    namespaced = [d for d in production if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"zoho-connect"}


def test_prometheus_finds_each_deployment_under_the_job_the_alerts_name(production) -> None:
    """prometheus.yml takes the job from the pod's name label and the port from its
    annotation: the annotation must be the port the service's metrics listen on, and the
    jobs those ZohoConnectTargetDown watches."""
    scrape = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    relabel = scrape["scrape_configs"][0]["relabel_configs"]
    job_from = [r["source_labels"] for r in relabel if r.get("target_label") == "job"]
    assert job_from == [["__meta_kubernetes_pod_label_app_kubernetes_io_name"]]
    rules = yaml.safe_load((REPO_ROOT / "deploy/prometheus/zoho-connect.rules.yml").read_text())
    down = next(r for g in rules["groups"] for r in g["rules"]
                if r["alert"] == "ZohoConnectTargetDown")
    watched = set(re.search(r'job=~"([^"]+)"', down["expr"]).group(1).split("|"))
    deployments = by_kind(production, "Deployment")
    assert watched == set(deployments)
    for name, deployment in deployments.items():
        template = deployment["spec"]["template"]
        assert template["metadata"]["labels"]["app.kubernetes.io/name"] == name
        port = template["metadata"]["annotations"]["prometheus.io/port"]
        container = template["spec"]["containers"][0]
        listen = {v["name"]: v.get("value") for v in container["env"]}
        metrics_env = [v for k, v in listen.items() if k.endswith("_METRICS_LISTEN")]
        assert metrics_env == [f"0.0.0.0:{port}"], name
        assert {"name": "metrics", "containerPort": int(port)} in container["ports"], name
