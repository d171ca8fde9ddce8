"""The deploy files really run. Every application service of docker-compose.yml, and then every container
of the dev overlay's Deployments and migration Job, is started on this machine as a host process with
exactly its command and environment: the compose/cluster host names `postgres` and `redis` become the
local test database and Redis database, nothing else of the test's own environment leaks in, and ports are
the ones the files declare. Then a real branch file is posted, an order is created and delivered, a report
is read; each service's /metrics must show its counters moved, and a worker log line must carry the
upload_id that ingest returned. A wrong command, port or variable in either file fails a named step.

orders and reporting are built on other branches; their steps run as soon as their service folders exist
(after the merge) and are reported as not run before that.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import httpx
import pytest
from sqlalchemy import text

from tests.deploy.hostrun import (COMPOSE_DOTENV, START_ORDER, Platform, deliver_an_order, metric, port_free,
                                  scrape, wait_for)
from tests.deploy.manifests import compose_specs, k8s_specs, render_overlay
from tests.support import REAL_FILES

pytestmark = pytest.mark.e2e

BRANCH_FILE = REAL_FILES / "leeds_25-08-2021_09-00-00.csv"
UPLOAD_TOOL_FILES = ("uppingham_25-08-2021_09-00-00.csv", "longridge_25-08-2021_09-00-00.csv")


# --- the flow both files must support ------------------------------------------------------------
def exercise(platform: Platform, engine, *, upload_tool: bool) -> None:
    """Runs the whole flow through every service; each step names itself when it fails."""
    specs = platform.specs
    missing = [name for name in ("migrate", *START_ORDER) if name not in specs]
    assert not missing, f"{platform.label}: no service/container for {missing}"
    services = list(START_ORDER)
    with platform.step("every process is given the database and the broker"):
        for name in ("migrate", *services):
            unset = {"DATABASE_URL", "REDIS_URL", "CAFEFLOW_SECRET_KEY", "CAFEFLOW_ADMIN_TOKEN"} - set(specs[name].env)
            assert not unset, f"{name} would run on built-in defaults for {sorted(unset)}"
    ports = sorted({port for name in services for port in specs[name].ports})
    with platform.step("fixed ports are free"):
        busy = [port for port in ports if not port_free(port)]
        assert not busy, f"ports {busy} are in use on this machine (another cafeflow running?)"

    platform.start_all(services)

    for name in services:
        spec = specs[name]
        for kind, path, port in spec.http_checks:
            with platform.step(f"{name} {kind} GET {path} on {port}", [name]):
                response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
                assert response.status_code == 200, response.text
        for argv in spec.exec_checks:
            with platform.step(f"{name} health check {argv}", [name]):
                env = platform.env_for(spec)
                result = subprocess.run(argv, cwd=platform.workdir, env=env, capture_output=True, check=False,
                                        text=True, timeout=60)
                assert result.returncode == 0, result.stdout + result.stderr

    flower_auth = tuple(specs["flower"].env["FLOWER_BASIC_AUTH"].split(",")[0].split(":", 1))
    before = {name: scrape(platform.url(name), flower_auth if name == "flower" else None) for name in services}
    admin = {"Authorization": f"Bearer {specs['ingest'].env['CAFEFLOW_ADMIN_TOKEN']}"}

    request_id = f"deploy-check-{time.monotonic_ns()}"
    with platform.step("post a real branch file to ingest", ["ingest"]):
        with BRANCH_FILE.open("rb") as handle:
            response = httpx.post(f"{platform.url('ingest')}/v1/uploads", headers={**admin, "X-Request-ID": request_id},
                                  files={"file": (BRANCH_FILE.name, handle, "text/csv")}, timeout=60)
        assert response.status_code == 202, response.text
        upload_id = response.json()["id"]

    with platform.step(f"worker loads upload {upload_id}", ["ingest", "worker"]):
        def loaded():
            body = httpx.get(f"{platform.url('ingest')}/v1/uploads/{upload_id}", headers=admin, timeout=10).json()
            assert body["status"] != "failed", body
            return body if body["status"] == "loaded" else None
        upload = wait_for(loaded, 120, f"upload {upload_id} to be loaded")
        assert upload["rows_loaded"] > 0, upload
        with engine.connect() as conn:   # it went into the test database, not some default one
            stored = conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction WHERE upload_id = :id"),
                                  {"id": upload_id}).scalar()
        assert stored == upload["rows_loaded"]

    if upload_tool:
        with platform.step("the upload tool posts a folder of branch files", ["ingest", "worker"]):
            folder = platform.workdir.parent / "branch-files"
            folder.mkdir()
            for name in UPLOAD_TOOL_FILES:
                shutil.copy(REAL_FILES / name, folder)
            platform.specs["upload"].mounts = {"/data": str(folder)}
            result = platform.run("upload", timeout=300)
            # 0: all loaded; 1: loaded with some rows rejected (the data's own problems); 2 would be errors
            assert result.returncode in (0, 1), result.stdout + result.stderr
            for name in UPLOAD_TOOL_FILES:
                assert name in result.stdout + result.stderr, result.stdout + result.stderr
            with engine.connect() as conn:
                files = conn.execute(text("SELECT count(*) FROM ingest.upload WHERE status = 'loaded'")).scalar()
            assert files == 1 + len(UPLOAD_TOOL_FILES)

    deliver_an_order(platform, engine)

    with platform.step("reporting: sales by branch", ["reporting"]):
        response = httpx.get(f"{platform.url('reporting')}/v1/reports/sales", params={"group_by": "branch"},
                             headers=admin, timeout=30)
        assert response.status_code == 200, response.text
        assert "Leeds" in response.text, response.text[:2000]

    after = {name: scrape(platform.url(name), flower_auth if name == "flower" else None) for name in services}
    with platform.step("ingest /metrics moved"):
        for name, labels in (("cafeflow_http_requests_total", {"service": "ingest", "route": "/v1/uploads",
                                                                "method": "POST", "status": "202"}),
                             ("cafeflow_uploads_received_total", {})):
            assert metric(after["ingest"], name, **labels) > metric(before["ingest"], name, **labels), name
    with platform.step("worker /metrics moved"):
        rows = "cafeflow_rows_total"
        assert metric(after["worker"], rows, outcome="loaded") - metric(before["worker"], rows, outcome="loaded") \
            >= upload["rows_loaded"]
        task = {"task": "transform.process_upload", "outcome": "succeeded"}
        assert metric(after["worker"], "cafeflow_celery_tasks_total", **task) > \
            metric(before["worker"], "cafeflow_celery_tasks_total", **task)
        assert metric(after["worker"], "cafeflow_task_duration_seconds_count", task="transform.process_upload") > \
            metric(before["worker"], "cafeflow_task_duration_seconds_count", task="transform.process_upload")
    with platform.step("beat /metrics serves the live queue length (beat alone reads the broker)"):
        assert 'cafeflow_queue_messages{queue="transform"}' in after["beat"].replace(".0", "")
        assert "cafeflow_queue_unacked" in after["beat"] and metric(after["beat"], "cafeflow_broker_up") == 1
        assert "cafeflow_queue_messages" not in after["worker"]
    with platform.step("flower /metrics counted the worker's task events"):
        assert metric(after["flower"], "flower_events_total", type="task-succeeded") > \
            metric(before["flower"], "flower_events_total", type="task-succeeded")
    for name in ("orders", "reporting"):
        with platform.step(f"{name} /metrics moved"):
            moved = metric(after[name], "cafeflow_http_requests_total", service=name)
            assert moved > metric(before[name], "cafeflow_http_requests_total", service=name)

    with platform.step(f"a worker log line carries upload_id {upload_id}", ["worker"]):
        records = []
        for line in platform.processes["worker"].output().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        assert records, "the worker wrote no JSON log lines"
        assert any(record.get("upload_id") == upload_id for record in records)
        assert any(record.get("upload_id") == upload_id and record.get("message") == "upload loaded"
                   for record in records)
        # ... and the request id of the HTTP request that brought the file
        assert any(record.get("upload_id") == upload_id and record.get("request_id") == request_id
                   for record in records), "the worker's log lines lack the ingest request id"

    with platform.step("flower asks for basic auth and shows the workers", ["flower"]):
        assert httpx.get(f"{platform.url('flower')}/", timeout=10).status_code == 401
        assert httpx.get(f"{platform.url('flower')}/", auth=flower_auth, timeout=10).status_code == 200
        assert httpx.get(f"{platform.url('flower')}/api/workers", auth=("nobody", "wrong"), timeout=10
                         ).status_code == 401
    with platform.step("flower's /metrics asks for the same basic auth as its pages", ["flower"]):
        assert httpx.get(f"{platform.url('flower')}/metrics", timeout=10).status_code == 401
        assert httpx.get(f"{platform.url('flower')}/metrics", auth=("nobody", "wrong"), timeout=10).status_code == 401
    with platform.step("flower logs JSON like every other process", ["flower"]):
        lines = [line for line in platform.processes["flower"].output().splitlines() if line.strip()]
        assert lines, "flower wrote no log lines"
        records = [json.loads(line) for line in lines]      # a plain-text line fails here
        assert {record["service"] for record in records} == {"flower"}

    for name in services:
        with platform.step(f"{name} is still running", [name]):
            assert platform.processes[name].popen.poll() is None


@pytest.fixture
def platform_dir(tmp_path):
    return tmp_path


def test_host_run_docker_compose_services(platform_dir, clean):
    specs = compose_specs(COMPOSE_DOTENV)
    platform = Platform("docker-compose.yml", specs, platform_dir)
    try:
        exercise(platform, clean, upload_tool=True)
    finally:
        platform.stop()


def test_host_run_kubernetes_dev_overlay(platform_dir, clean):
    specs = k8s_specs(render_overlay("dev"))
    platform = Platform("k8s overlays/dev", specs, platform_dir)
    try:
        exercise(platform, clean, upload_tool=False)
    finally:
        platform.stop()
