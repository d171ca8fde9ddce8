"""Reading the deploy files as a runtime would: kustomize output, compose services with their variables
interpolated, and the command + environment + ports each application process gets."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support import ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
COMPOSE_FILE = ROOT / "docker-compose.yml"
WEB_SERVICES = ("ingest", "orders", "reporting")
# The services whose code is not on every branch yet (built in parallel); present once their folder exists.


def kubectl() -> str:
    path = shutil.which("kubectl")
    assert path, "kubectl is needed for `kubectl kustomize` (installed on the project's machine image)"
    return path


def kustomize(path: Path) -> list[dict]:
    result = subprocess.run([kubectl(), "kustomize", str(path)],
                            capture_output=True, check=False, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_overlay(name: str) -> list[dict]:
    return kustomize(K8S / "overlays" / name)


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def pod_specs(objects: list[dict]):
    """(owner object, pod spec) of every workload in the output."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield obj, obj["spec"]["template"]["spec"]


# --- compose -------------------------------------------------------------------------------------
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, variables: dict[str, str]):
    """Compose's variable syntax: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        present = name in variables and (variables[name] != "" or operator not in (":-", ":?"))
        if operator in (":-", "-"):
            return variables[name] if present else argument
        if operator in (":?", "?"):
            assert present, f"compose needs ${{{name}}}: {argument}"
            return variables[name]
        return variables.get(name, "")
    return _VARIABLE.sub(replace, value)


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def required_compose_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", COMPOSE_FILE.read_text()))


def image_healthcheck() -> list[str]:
    """The Dockerfile's HEALTHCHECK CMD (exec form), which compose services without their own inherit."""
    import json

    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, "the Dockerfile has no exec-form HEALTHCHECK"
    return json.loads(match.group(1))


# --- what one process gets -----------------------------------------------------------------------
@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    ports: list[int] = field(default_factory=list)
    # (kind, path, port) for each HTTP probe or health check the runtime would run
    http_checks: list[tuple[str, str, int]] = field(default_factory=list)
    exec_checks: list[list[str]] = field(default_factory=list)
    init: list[ProcessSpec] = field(default_factory=list)   # run to completion first (init containers)
    mounts: dict[str, str] = field(default_factory=dict)   # container path -> host path


def compose_specs(variables: dict[str, str]) -> dict[str, ProcessSpec]:
    """Every service that runs the cafeflow image, as the container would start it."""
    compose = load_compose()
    specs = {}
    image = compose["services"]["migrate"]["image"]
    for name, service in compose["services"].items():
        if service.get("image") != image:
            continue   # postgres, redis, prometheus, grafana: not ours
        service = interpolate(service, variables)
        command = service.get("command")
        assert isinstance(command, list) and command, f"compose service {name}: command must be exec form (a list)"
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"compose service {name}: environment must be a mapping"
        env = {key: "" if value is None else str(value) for key, value in environment.items()}
        spec = ProcessSpec(name, [str(part) for part in command], env)
        for published in service.get("ports", []):
            host, _, container = str(published).rpartition(":")
            assert host == container, f"compose service {name}: host and container ports differ ({published})"
            spec.ports.append(int(container))
        spec.ports += [int(port) for port in service.get("expose", [])]
        check = service.get("healthcheck") or {}
        if not check.get("disable"):
            test = check.get("test") or image_healthcheck()
            if test[0] == "CMD":
                test = test[1:]
            spec.exec_checks.append([str(part) for part in test])
        for volume in service.get("volumes", []):
            host, container = str(volume).split(":")[:2]
            spec.mounts[container] = host
        specs[name] = spec
    return specs


def k8s_specs(objects: list[dict]) -> dict[str, ProcessSpec]:
    """Every container of the rendered Deployments and Jobs, with envFrom/env resolved from the rendered
    ConfigMaps and Secrets."""
    config_maps = {obj["metadata"]["name"]: obj.get("data", {}) for obj in by_kind(objects, "ConfigMap")}
    secrets = {obj["metadata"]["name"]: {key: base64.b64decode(value).decode()
                                         for key, value in obj.get("data", {}).items()}
               | obj.get("stringData", {}) for obj in by_kind(objects, "Secret")}
    specs = {}
    for owner, pod in pod_specs(objects):
        init = [_container_spec(owner, c, config_maps, secrets) for c in pod.get("initContainers", [])]
        for container in pod["containers"]:
            spec = _container_spec(owner, container, config_maps, secrets)
            spec.init = init
            specs[container["name"]] = spec
    return specs


def _container_spec(owner: dict, container: dict, config_maps: dict, secrets: dict) -> ProcessSpec:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]
            if "secretKeyRef" in ref:
                env[item["name"]] = secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
            else:
                env[item["name"]] = config_maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv, f"{owner['metadata']['name']}: container {container['name']} has no command"
    ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
    spec = ProcessSpec(container["name"], argv, env, sorted(ports.values()))
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        if probe and "httpGet" in probe:
            port = probe["httpGet"]["port"]
            spec.http_checks.append((kind, probe["httpGet"]["path"], ports.get(port, port)))
        elif probe and "exec" in probe:
            spec.exec_checks.append(probe["exec"]["command"])
    return spec
