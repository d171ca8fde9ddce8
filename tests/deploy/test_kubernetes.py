"""deploy/k8s: both overlays build, pass kubernetes-validate --strict (KEDA's ScaledObject against our
schema of its CRD), and every rendered workload follows the rules of issue 5."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.deploy.manifests import K8S, OVERLAYS, WEB_SERVICES, by_kind, kustomize, pod_specs, render_overlay

SCHEMAS = Path(__file__).parent / "schemas"
# Kinds kubernetes-validate has no schema for, each with the schema we check it against instead.
CUSTOM_RESOURCES = {("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda-scaledobject.schema.json",
                    ("monitoring.coreos.com/v1", "PrometheusRule"): SCHEMAS / "prometheusrule.schema.json"}
# HTML pages, not in the OpenAPI documents
PAGES = {"/dashboard": "reporting", "/app": "orders", "/signin": "orders", "/signout": "orders", "/portal": "ingest"}


def _api_prefixes() -> dict[str, str]:
    """Every /v1/<resource> of each service's committed OpenAPI document: all must be reachable."""
    import json

    docs = Path(__file__).resolve().parents[2] / "docs" / "openapi"
    return {"/".join(path.split("/")[:3]): service
            for service in ("ingest", "orders", "reporting")
            for path in json.loads((docs / f"{service}.json").read_text())["paths"] if path.startswith("/v1/")}


INGRESS_PATHS = {**_api_prefixes(), **PAGES}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    return request.param, render_overlay(request.param)


@pytest.fixture(scope="module")
def fallback_variant(tmp_path_factory):
    """prod plus the worker-hpa-fallback component: what a cluster without KEDA applies."""
    folder = tmp_path_factory.mktemp("fallback")
    # kustomize takes local bases and components only as relative paths
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "overlays" / "prod", folder)],
        "components": [os.path.relpath(K8S / "components" / "worker-hpa-fallback", folder)]}))
    return kustomize(folder)


def _validate(objects: list[dict], tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    return subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet",
                           str(path)], capture_output=True, check=False, text=True, timeout=300)


def _validate_with_custom_resources(label: str, objects: list[dict], tmp_path: Path) -> set[tuple[str, str]]:
    """kubernetes-validate --strict for the standard kinds, our schemas for the custom resources; returns
    the custom kinds found."""
    standard = [obj for obj in objects if (obj["apiVersion"], obj["kind"]) not in CUSTOM_RESOURCES]
    custom = [obj for obj in objects if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES]
    result = _validate(standard, tmp_path)
    assert result.returncode == 0, f"{label}: kubernetes-validate --strict failed:\n{result.stdout}{result.stderr}"
    for obj in custom:
        schema = json.loads(CUSTOM_RESOURCES[(obj["apiVersion"], obj["kind"])].read_text())
        jsonschema.validate(obj, schema)
    return {(obj["apiVersion"], obj["kind"]) for obj in custom}


def test_overlays_pass_kubernetes_validate_strict(rendered, tmp_path):
    overlay, objects = rendered
    # The only objects left to another schema are the custom resources named above, and they exist.
    assert _validate_with_custom_resources(overlay, objects, tmp_path) == set(CUSTOM_RESOURCES)


def test_kubernetes_validate_would_catch_a_misspelt_field(rendered, tmp_path):
    """The strict check is live: an unknown field in a container fails it."""
    _, objects = rendered
    broken = json.loads(json.dumps([obj for obj in objects if obj["kind"] == "Deployment"][:1]))
    broken[0]["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {"tcpSocket": {"port": 1}}
    assert _validate(broken, tmp_path).returncode != 0


def test_prometheusrule_schema_rejects_a_misspelt_field(rendered):
    _, objects = rendered
    rule = json.loads(json.dumps(by_kind(objects, "PrometheusRule")[0]))
    schema = json.loads(CUSTOM_RESOURCES[("monitoring.coreos.com/v1", "PrometheusRule")].read_text())
    rule["spec"]["groups"][1]["rules"][0]["anotations"] = rule["spec"]["groups"][1]["rules"][0].pop("annotations")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, schema)


def test_scaledobject_schema_rejects_a_misspelt_field(rendered):
    _, objects = rendered
    scaled = json.loads(json.dumps(by_kind(objects, "ScaledObject")[0]))
    scaled["spec"]["maxReplicas"] = 3
    schema = json.loads(CUSTOM_RESOURCES[("keda.sh/v1alpha1", "ScaledObject")].read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, schema)


def _config(objects: list[dict]) -> dict[str, str]:
    (config,) = [obj for obj in by_kind(objects, "ConfigMap") if obj["metadata"]["name"].startswith("cafeflow-config")]
    return config["data"]


def test_every_container_follows_the_rules(rendered):
    overlay, objects = rendered
    config = _config(objects)
    longest_task = max(int(config["TASK_SOFT_TIME_LIMIT"]), int(config["TASK_TIME_LIMIT"]))
    accounts = {obj["metadata"]["name"] for obj in by_kind(objects, "ServiceAccount")}
    problems = []
    workloads = list(pod_specs(objects))
    assert {owner["metadata"]["name"] for owner, _ in workloads} == {
        "cafeflow-ingest", "cafeflow-orders", "cafeflow-reporting", "cafeflow-worker", "cafeflow-beat",
        "cafeflow-flower", "cafeflow-migrate"}
    for owner, pod in workloads:
        where = f"{overlay} {owner['kind']}/{owner['metadata']['name']}"
        if pod.get("serviceAccountName") not in accounts:
            problems.append(f"{where}: no ServiceAccount of its own")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts a service-account token it does not use")
        pod_security = pod.get("securityContext", {})
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if owner["metadata"]["name"] == "cafeflow-worker" and grace <= longest_task:
            problems.append(f"{where}: grace period {grace}s is not longer than the longest task ({longest_task}s)")
        if owner["kind"] == "Deployment" and grace <= 30:
            problems.append(f"{where}: grace period {grace}s is not above gunicorn's/beat's 30 s shutdown")
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for container in pod["containers"] + pod.get("initContainers", []):
            name = f"{where} container {container['name']}"
            security = container.get("securityContext", {})
            image = container["image"]
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                problems.append(f"{name}: image {image} has no fixed tag")
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in container.get("resources", {}).get(bound, {}):
                        problems.append(f"{name}: no {resource} {bound}")
            if not security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
                problems.append(f"{name}: not runAsNonRoot")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: root filesystem is writable")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: privilege escalation allowed")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{name}: capabilities not all dropped")
            tmp = [mount for mount in container.get("volumeMounts", []) if mount["mountPath"] == "/tmp"]
            if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
                problems.append(f"{name}: /tmp is not an emptyDir")
            if owner["kind"] == "Job" or container in pod.get("initContainers", []):
                continue   # one-shots: no server to probe
            ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
            expected = {"startupProbe": None, "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
            if container["name"] == "flower":   # Flower serves its own unauthenticated /healthcheck
                expected = {"startupProbe": None, "readinessProbe": "/healthcheck", "livenessProbe": "/healthcheck"}
            for kind, path in expected.items():
                probe = container.get(kind)
                if not probe or "httpGet" not in probe:
                    problems.append(f"{name}: no HTTP {kind}")
                    continue
                if path and probe["httpGet"]["path"] != path:
                    problems.append(f"{name}: {kind} on {probe['httpGet']['path']}, expected {path}")
                port = probe["httpGet"]["port"]
                if port not in ports and port not in ports.values():
                    problems.append(f"{name}: {kind} port {port} is not a container port")
    assert not problems, "\n".join(problems)


def test_scaling_disruption_and_beat(rendered):
    overlay, objects = rendered
    deployments = {obj["metadata"]["name"]: obj for obj in by_kind(objects, "Deployment")}
    hpas = {obj["spec"]["scaleTargetRef"]["name"] for obj in by_kind(objects, "HorizontalPodAutoscaler")}
    assert {f"cafeflow-{name}" for name in WEB_SERVICES} <= hpas
    assert "cafeflow-beat" not in hpas and "cafeflow-worker" not in hpas   # KEDA scales the workers
    (scaled,) = by_kind(objects, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "cafeflow-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == _config(objects)["TRANSFORM_QUEUE"]
    # Every Deployment has a PodDisruptionBudget whose selector matches its pods.
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [pdb for pdb in by_kind(objects, "PodDisruptionBudget")
                    if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(covering) == 1, f"{overlay}: {name} has {len(covering)} PodDisruptionBudgets"
    # Everything that touches the schemas waits for the migration before it starts.
    for name in ("cafeflow-ingest", "cafeflow-orders", "cafeflow-reporting", "cafeflow-worker", "cafeflow-beat"):
        (init,) = deployments[name]["spec"]["template"]["spec"]["initContainers"]
        assert init["command"][:3] == ["cafeflow", "migrate", "--wait"], name
    beat = deployments["cafeflow-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"] == {"type": "Recreate"}


def test_services_ingress_and_network_policy(rendered):
    overlay, objects = rendered
    deployments = {obj["metadata"]["name"]: obj for obj in by_kind(objects, "Deployment")}
    services = {obj["metadata"]["name"]: obj for obj in by_kind(objects, "Service")}
    for name, service in services.items():
        # a Service selects exactly one Deployment's pods, on a port those pods declare
        targets = [d for d in deployments.values()
                   if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(targets) == 1, f"{overlay}: Service {name} selects {len(targets)} Deployments"
        ports = {p.get("name") for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert all(port["targetPort"] in ports for port in service["spec"]["ports"]), name
    (ingress,) = by_kind(objects, "Ingress")
    routes = {path["path"]: path["backend"]["service"]["name"]
              for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    for path, service in INGRESS_PATHS.items():
        assert routes.get(path) == f"cafeflow-{service}", f"{overlay}: Ingress {path} -> {routes.get(path)}"
    assert set(routes.values()) <= set(services)
    policies = {obj["metadata"]["name"]: obj["spec"] for obj in by_kind(objects, "NetworkPolicy")}
    assert policies["cafeflow-default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    web = policies["cafeflow-web-from-ingress"]
    assert web["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ingress-nginx"}}}]
    for store, port in (("postgres", 5432), ("redis", 6379)):
        rule = policies[f"{store}-from-cafeflow"]
        assert rule["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": store}}
        cafeflow_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "cafeflow"}}}
        assert rule["ingress"] == [{"from": [cafeflow_pods], "ports": [{"port": port, "protocol": "TCP"}]}]
    # every cafeflow pod carries the label those policies admit
    for deployment in deployments.values():
        assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "cafeflow"


def test_overlays_differ_where_they_should():
    dev, prod = (render_overlay(name) for name in OVERLAYS)
    images = {name: {c["image"] for _, pod in pod_specs(objs) for c in pod["containers"]}
              for name, objs in (("dev", dev), ("prod", prod))}
    assert images["dev"] == {"cafeflow:dev"} and len(images["prod"]) == 1 and images["prod"] != images["dev"]
    # Autoscaled Deployments leave `replicas` to their autoscaler (an apply must not reset a scale-out);
    # the overlays size them through the autoscalers' bounds.
    for objs in (dev, prod):
        replicas = {d["metadata"]["name"]: d["spec"].get("replicas") for d in by_kind(objs, "Deployment")}
        assert replicas == {"cafeflow-ingest": None, "cafeflow-orders": None, "cafeflow-reporting": None,
                            "cafeflow-worker": None, "cafeflow-beat": 1, "cafeflow-flower": 1}
    minimum = {name: {h["metadata"]["name"]: h["spec"]["minReplicas"] for h in by_kind(objs, "HorizontalPodAutoscaler")}
               for name, objs in (("dev", dev), ("prod", prod))}
    assert minimum["dev"]["cafeflow-ingest"] == 1 and minimum["prod"]["cafeflow-ingest"] == 3
    workers = {name: by_kind(objs, "ScaledObject")[0]["spec"] for name, objs in (("dev", dev), ("prod", prod))}
    assert workers["dev"]["maxReplicaCount"] < workers["prod"]["maxReplicaCount"]
    assert {obj["metadata"]["namespace"] for obj in dev} == {"cafeflow-dev"}
    assert {obj["metadata"]["namespace"] for obj in prod} == {"cafeflow"}
    # prod generates no Secret: it is created outside git from base/secret.template.yaml
    assert by_kind(prod, "Secret") == [] and len(by_kind(dev, "Secret")) == 1
    template = yaml.safe_load((K8S / "base" / "secret.template.yaml").read_text())
    referenced = {key for _, pod in pod_specs(prod) for c in pod["containers"] for source in c.get("envFrom", [])
                  if "secretRef" in source for key in [source["secretRef"]["name"]]}
    assert referenced == {template["metadata"]["name"]}
    assert all(re.fullmatch(r".*<[^>]+>.*", value) for value in template["stringData"].values()), \
        "the Secret template must hold placeholders only"


def test_hpa_fallback_component_replaces_keda(fallback_variant, tmp_path):
    assert by_kind(fallback_variant, "ScaledObject") == []
    assert "cafeflow-worker" in {obj["spec"]["scaleTargetRef"]["name"]
                                 for obj in by_kind(fallback_variant, "HorizontalPodAutoscaler")}
    assert _validate_with_custom_resources("fallback", fallback_variant, tmp_path) == {
        ("monitoring.coreos.com/v1", "PrometheusRule")}
