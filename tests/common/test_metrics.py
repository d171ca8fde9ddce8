"""services/common/metrics.py in one process: importing it creates no family (each process exposes only what
it uses), owners start their series at 0, and beat's uploads-table figures are read from the real table.
The same, across the real processes and through Prometheus, is tests/deploy/test_prometheus.py."""
from __future__ import annotations

import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from services.common import metrics
from services.common import task_names
from tests.support import ROOT, free_port
from tests.transform.helpers import post

SALE = b'25/08/2021 09:00,Leeds,Ann Example,"Large Flat white - 2.45",2.45,CASH,\n'


def _samples(registry, name: str) -> dict[tuple, float]:
    return {tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(metrics.metrics_payload(registry)[0].decode())
            for sample in family.samples if sample.name == name}


def test_importing_the_services_creates_no_family(tmp_path):
    """In multiprocess mode a family defined at import wrote its value file at once: every process showed
    every family (cafeflow_upload_bytes_total at 0 on orders, reporting, the worker, beat and Flower)."""
    script = ("import services.common.metrics as m, services.orders.handoff, services.transform.celery_app, "
              "services.transform.tasks, services.transform.live, services.ingest.api.uploads; "
              "print(m.metrics_payload()[0].decode())")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
                                 "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "cafeflow_" not in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_web_service_starts_its_series_at_zero(client):
    client.get("/healthz")          # the first request
    requests = _samples(None, "cafeflow_http_requests_total")
    upload_route = (("method", "POST"), ("route", "/v1/uploads"), ("service", "ingest"), ("status", "500"))
    assert upload_route in requests
    received = _samples(None, "cafeflow_uploads_received_total")
    assert {labels for labels in received} >= {(("outcome", outcome),) for outcome in metrics.UPLOAD_RECEIVED_OUTCOMES}


def test_the_worker_starts_every_task_outcome_and_failure_kind_at_zero(celery_app):
    from services.transform.celery_app import TASK_OUTCOMES, zero_worker_metrics

    zero_worker_metrics(celery_app)
    tasks = {dict(labels)["task"] for labels in _samples(None, "cafeflow_celery_tasks_total")}
    assert {task_names.PROCESS_UPLOAD, task_names.LOAD_LIVE_ORDER, task_names.SWEEP_UPLOADS} <= tasks
    failures = {(dict(labels)["task"], dict(labels)["error"])
                for labels in _samples(None, "cafeflow_task_failures_total")}
    assert failures >= {(task, kind) for task in TASK_OUTCOMES for kind in metrics.TASK_FAILURE_KINDS}
    durations = {(dict(labels)["task"], dict(labels)["outcome"])
                 for labels in _samples(None, "cafeflow_task_duration_seconds_count")}
    assert durations >= {(task, outcome) for task, outcomes in TASK_OUTCOMES.items() for outcome in outcomes}


def _collect(collector) -> dict[str, list]:
    return {family.name: family.samples for family in collector.collect()}


def test_beat_reads_uploads_held_past_their_lease_and_each_branch_s_last_file(client, admin_headers, settings, clean):
    held = post(client, SALE, admin_headers, name="leeds_25-08-2021.csv").get_json()["id"]
    fresh = post(client, SALE.replace(b"09:00", b"09:01"), admin_headers, name="leeds_26-08-2021.csv").get_json()["id"]
    loaded = post(client, SALE.replace(b"09:00", b"09:02"), admin_headers, name="leeds_27-08-2021.csv").get_json()["id"]
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET status = 'processing', started_at = now() - interval '2 hours' "
                          "WHERE id = :id"), {"id": held})
        conn.execute(text("UPDATE ingest.upload SET status = 'processing', started_at = now() WHERE id = :id"),
                     {"id": fresh})
        conn.execute(text("UPDATE ingest.upload SET status = 'loaded', created_at = now() - interval '3 hours', "
                          "branch_id = (SELECT id FROM ingest.branch WHERE name = 'Leeds') WHERE id = :id"),
                     {"id": loaded})
    figures = _collect(metrics.UploadStateCollector(settings.psycopg2_dsn, lease_seconds=3600))
    assert figures["cafeflow_uploads_table_up"][0].value == 1
    assert figures["cafeflow_uploads_held_past_lease"][0].value == 1         # the 2-hour one, not the fresh one
    assert 7100 < figures["cafeflow_upload_oldest_processing_seconds"][0].value < 7300
    (leeds,) = figures["cafeflow_branch_last_file_age_seconds"]               # branches without a file: none
    assert leeds.labels == {"branch": "Leeds"} and 10700 < leeds.value < 10900


def test_beat_says_when_the_uploads_table_does_not_answer():
    dsn = f"host=127.0.0.1 port={free_port()} user=postgres dbname=nothing"
    figures = _collect(metrics.UploadStateCollector(dsn, lease_seconds=3600))
    assert figures == {"cafeflow_uploads_table_up": figures["cafeflow_uploads_table_up"]}
    assert figures["cafeflow_uploads_table_up"][0].value == 0
