"""The image and compose files: lint, schema, lock and secrets hygiene, Grafana provisioning."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.deploy.manifests import COMPOSE_FILE, load_compose, required_compose_variables
from tests.support import ROOT

BIN = Path(sys.executable).parent
GRAFANA = ROOT / "deploy" / "grafana"


def test_compose_file_matches_the_compose_spec():
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                             str(COMPOSE_FILE)], capture_output=True, check=False, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_shape():
    services = load_compose()["services"]
    for name in ("migrate", "ingest", "orders", "reporting", "worker", "beat", "flower", "postgres", "redis"):
        assert name in services, name
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} needs a health check"
        assert any(not str(v).startswith(("/", ".")) for v in services[name]["volumes"]), f"{name}: named volume"
    assert services["migrate"]["restart"] == "no"
    for name in ("ingest", "orders", "reporting", "worker", "beat", "flower"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy", name
        assert services[name]["read_only"] is True and services[name]["cap_drop"] == ["ALL"], name
    assert "ports" not in services["worker"], "published ports would stop `--scale worker=N`"
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    # worker stop grace longer than the hard task limit
    grace = int(services["worker"]["stop_grace_period"].rstrip("s"))
    assert grace > int(services["worker"]["environment"]["TASK_TIME_LIMIT"])


def test_env_example_lists_every_required_variable_and_no_secret():
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert required_compose_variables() <= set(example), required_compose_variables() - set(example)
    for key, value in example.items():
        if any(word in key for word in ("PASSWORD", "SECRET", "TOKEN", "AUTH")):
            assert value.rpartition(":")[2].startswith(("replace", "change")), \
                f".env.example {key} must be a placeholder, not a usable secret"
    # and the services refuse those placeholders outside development
    from pydantic import ValidationError

    from services.common.settings import Settings
    try:
        Settings(CAFEFLOW_ENV="production", CAFEFLOW_SECRET_KEY=example["CAFEFLOW_SECRET_KEY"],
                 CAFEFLOW_ADMIN_TOKEN=example["CAFEFLOW_ADMIN_TOKEN"])
    except ValidationError:
        pass
    else:
        raise AssertionError("placeholder secrets from .env.example were accepted in production")
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_dockerfile_passes_hadolint_and_keeps_its_promises():
    result = subprocess.run([str(BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, check=False,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", dockerfile, re.MULTILINE)
    assert len(stages) >= 2, "multi-stage"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, re.MULTILINE).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), f"base image pinned by full version: {base}"
    final = dockerfile[dockerfile.rindex("\nFROM "):].replace("\\\n", " ")
    assert re.search(r"^USER 1000", final, re.MULTILINE), "non-root user in the final stage"
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile
    assert not re.search(r"apt-get install|build-essential|gcc", final), "no build tools in the final stage"
    for instruction in ("CMD", "ENTRYPOINT", "HEALTHCHECK"):
        for line in re.findall(rf"^{instruction}\b.*$", final, re.MULTILINE):
            assert "[" in line, f"exec form: {line}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1:] and "*" in ignored, ".dockerignore is an allow-list"
    assert not any(entry.startswith("!.env") for entry in ignored)


def _locked() -> dict[str, list[Version]]:
    pins: dict[str, list[Version]] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins.setdefault(match.group(1).lower().replace("_", "-"), []).append(Version(match.group(2)))
    return pins


def test_lock_pins_every_dependency_with_hashes():
    """Offline: each runtime dependency of pyproject.toml is pinned in requirements.lock at a version its
    specifier allows, and every pin carries hashes (the image installs with --require-hashes)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _locked()
    for raw in project["dependencies"]:
        requirement = Requirement(raw)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: run make lock"
        assert all(requirement.specifier.contains(v, prereleases=True) for v in pins[name]), \
            f"requirements.lock pins {name} {pins[name]} outside {requirement.specifier}: run make lock"
        for extra in requirement.extras:   # e.g. celery[redis] -> redis
            assert extra in pins or name in pins
    blocks = re.split(r"\n(?=[a-z0-9])", (ROOT / "requirements.lock").read_text())
    assert all("--hash=sha256:" in block for block in blocks if re.match(r"^[A-Za-z0-9]", block))
    dev_only = {Requirement(raw).name.lower() for raw in project["optional-dependencies"]["dev"]}
    assert not (dev_only - {"pyyaml", "packaging"}) & set(pins), "dev tools do not belong in the image's lock"


def test_lock_matches_pyproject_by_resolution():
    """`make check-lock`: uv resolves pyproject.toml again, keeping the committed pins where they still
    fit; any difference means the lock is stale."""
    result = subprocess.run(["make", "--no-print-directory", "check-lock"], cwd=ROOT, capture_output=True, check=False,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_and_dashboard(engine, clean, tmp_path):
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "cafeflow.yml").read_text())
    uids = {source["uid"]: source for source in datasources["datasources"]}
    assert uids["cafeflow-postgres"]["type"] == "grafana-postgresql-datasource"
    assert uids["cafeflow-postgres"]["url"] == "postgres:5432"
    compose = load_compose()["services"]["grafana"]
    assert any(volume.startswith("./deploy/grafana/provisioning:") for volume in compose["volumes"])
    dashboard = json.loads((GRAFANA / "dashboards" / "cafeflow-overview.json").read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert {panel["datasource"]["uid"] for panel in panels} == set(uids)
    assert compose["environment"]["GRAFANA_DB_USER"] == "cafeflow_grafana"
    # Compose's grafana-reader one-shot, run here with exactly its command and environment, creates that login.
    from tests.deploy.hostrun import Platform
    from tests.deploy.manifests import compose_specs
    from tests.deploy.test_host_run import COMPOSE_DOTENV

    platform = Platform("docker-compose.yml", compose_specs(COMPOSE_DOTENV), tmp_path)
    created = platform.run("grafana-reader", timeout=120)
    assert created.returncode == 0 and "member of cafeflow_reporting" in created.stdout, created.stdout + created.stderr
    # Every SQL panel runs on the migrated warehouse as that login (Grafana's time macros replaced by literals),
    # and the login cannot read the orders schema's customer data or write anything.
    with engine.connect() as conn:
        conn.execute(text("SET ROLE cafeflow_grafana"))
        for name in ("orders.customer_order", "ingest.upload_chunk"):
            with pytest.raises(DBAPIError) as refused, conn.begin_nested():
                conn.execute(text(f"SELECT * FROM {name} LIMIT 1"))
            assert refused.value.orig.pgcode == "42501", name
        with pytest.raises(DBAPIError) as refused, conn.begin_nested():
            conn.execute(text("INSERT INTO warehouse.dim_branch (branch_key, name) VALUES ('x', 'X')"))
        assert refused.value.orig.pgcode == "42501"
        for panel in panels:
            for target in panel["targets"]:
                if "rawSql" in target:
                    query = (target["rawSql"].replace("$__timeFrom()", "'2021-01-01T00:00:00Z'::timestamptz")
                             .replace("$__timeTo()", "'2030-01-01T00:00:00Z'::timestamptz"))
                    assert "$__" not in query, query
                    conn.execute(text(query)).fetchall()
    business = [p for p in panels if p["datasource"]["uid"] == "cafeflow-postgres"]
    operational = [p for p in panels if p["datasource"]["uid"] == "cafeflow-prometheus"]
    assert len(business) >= 5 and len(operational) >= 6
