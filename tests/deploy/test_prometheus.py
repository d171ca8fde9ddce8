"""The dashboard's figures are true. Every process of docker-compose.yml runs on this machine (as in
test_host_run.py, on compose's fixed ports), Debian's Prometheus scrapes them with compose's own scrape
configuration and rules (its targets mapped to loopback, Flower's password file to a temporary one, the
intervals shortened to 2 s), known traffic is generated (N real branch files, one file that fails, one live
order delivered), and then every Prometheus expression of the Grafana dashboard is run and compared with
the known figures: uploads received N+1, finished N loaded and 1 failed, rows exactly the rows the uploads
report, Celery tasks by outcome exact, task failures 0 of every kind, the 5xx share 0, no NaN and no empty
panel. Each process's /metrics holds only its own families (listed here per process).

Exact increase(): Prometheus extrapolates increase() to the edges of its range. The series start at 0 before
the traffic (that is the point of the fix), so nothing is extrapolated at the start; each expression is
evaluated at the timestamp of its target's last scrape, so nothing is extrapolated at the end."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.hostrun import (COMPOSE_DOTENV, START_ORDER, Platform, deliver_an_order, metric, port_free, scrape,
                                  wait_for)
from tests.deploy.manifests import compose_specs
from tests.support import REAL_FILES, ROOT, free_port

pytestmark = pytest.mark.e2e

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "cafeflow-overview.json"
SCRAPE_CONFIG = ROOT / "deploy" / "compose" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules"
FILES = sorted(REAL_FILES.glob("*.csv"))[:3]
FAILING_FILE = b"hello, this is a shopping list\neggs, milk\n"

HTTP = {"cafeflow_http_requests", "cafeflow_http_request_duration_seconds", "cafeflow_http_sql_queries"}
# What each process owns (services/common/metrics.py; docs/operations.md lists the same).
FAMILIES = {
    "ingest": HTTP | {"cafeflow_uploads_received", "cafeflow_upload_bytes"},
    "orders": HTTP | {"cafeflow_logins", "cafeflow_live_order_handoffs"},
    "reporting": HTTP,
    "worker": {"cafeflow_rows", "cafeflow_uploads_finished", "cafeflow_task_duration_seconds",
               "cafeflow_task_failures", "cafeflow_celery_tasks", "cafeflow_uploads_requeued",
               "cafeflow_live_orders_resent", "cafeflow_loop_alive"},
    "beat": {"cafeflow_queue_messages", "cafeflow_queue_unacked", "cafeflow_broker_up",
             "cafeflow_uploads_held_past_lease", "cafeflow_upload_oldest_processing_seconds",
             "cafeflow_branch_last_file_age_seconds", "cafeflow_uploads_table_up", "cafeflow_loop_alive"},
    "flower": set(),
}
JOBS = {"cafeflow-web": 3, "cafeflow-worker": 1, "cafeflow-beat": 1, "cafeflow-flower": 1}


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    assert path, "Debian's prometheus is needed (make test installs it: scripts/ensure-prometheus.sh)"
    return path


def host_scrape_config(tmp_path, password: str) -> dict:
    """Compose's scrape configuration and rules, as they would run on this machine."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"] = {"scrape_interval": "2s", "evaluation_interval": "2s"}
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(RULES / "*.yml")]
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = [f"127.0.0.1:{target.rpartition(':')[2]}" for target in static["targets"]]
        for discovery in job.pop("dns_sd_configs", []):
            job.setdefault("static_configs", []).append(
                {"targets": [f"127.0.0.1:{discovery['port']}" for _ in discovery["names"]]})
        if "basic_auth" in job:
            secret = tmp_path / "flower_metrics_password"
            secret.write_text(password)
            job["basic_auth"]["password_file"] = str(secret)
    return config


class Prometheus:
    def __init__(self, tmp_path, config: dict) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        check = subprocess.run([shutil.which("promtool") or "promtool", "check", "config", str(config_path)],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log_path = tmp_path / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [prometheus_binary(), f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def api(self, path: str, **params):
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("query", **params)
        assert data["resultType"] == "vector", data
        return data["result"]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        self._log.close()


def families(body: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(body) if family.name.startswith("cafeflow_")}


def dashboard_expressions() -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every Prometheus target of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["refId"], target["expr"]) for panel in dashboard["panels"]
            if panel.get("datasource", {}).get("type") == "prometheus" for target in panel.get("targets", [])]


def by(result: list[dict], *labels: str) -> dict:
    return {tuple(sample["metric"].get(label, "") for label in labels): float(sample["value"][1])
            for sample in result}


@pytest.fixture
def platform_and_prometheus(tmp_path, clean):
    specs = compose_specs(COMPOSE_DOTENV)
    # The sweepers run every 10 s by default: a sweep between Prometheus's last scrape and the test's own read
    # of the worker would make their counts race. This test is about the traffic's figures, so beat sweeps
    # only after it (the sweepers' own behaviour is tested in tests/transform and tests/e2e).
    specs["beat"].env["SWEEP_INTERVAL_SECONDS"] = "3600"
    ports = sorted({port for name in START_ORDER for port in specs[name].ports})
    busy = [port for port in ports if not port_free(port)]
    assert not busy, f"ports {busy} are in use on this machine (another cafeflow running?)"
    platform = Platform("prometheus", specs, tmp_path)
    prometheus = None
    try:
        platform.start_all(list(START_ORDER))
        prometheus = Prometheus(tmp_path, host_scrape_config(tmp_path, COMPOSE_DOTENV["FLOWER_METRICS_PASSWORD"]))
        yield platform, prometheus, clean
    finally:
        if prometheus is not None:
            prometheus.stop()
        platform.stop()


def _all_targets_up(prometheus: Prometheus) -> bool:
    targets = prometheus.api("targets")["activeTargets"]
    jobs = {}
    for target in targets:
        if target["health"] == "up":
            jobs[target["labels"]["job"]] = jobs.get(target["labels"]["job"], 0) + 1
    return jobs == JOBS


def test_every_dashboard_expression_tells_the_truth(platform_and_prometheus):
    platform, prometheus, engine = platform_and_prometheus
    admin = {"Authorization": f"Bearer {platform.specs['ingest'].env['CAFEFLOW_ADMIN_TOKEN']}"}
    flower_auth = tuple(platform.specs["flower"].env["FLOWER_BASIC_AUTH"].split(",")[0].split(":", 1))

    with platform.step("Prometheus starts"):
        wait_for(lambda: httpx.get(f"{prometheus.url}/-/ready", timeout=3).status_code == 200, 60,
                 f"Prometheus ready:\n{prometheus.output()}", interval=0.5)
    with platform.step("Prometheus scrapes every target of compose's scrape config (Flower with credentials)"):
        wait_for(lambda: _all_targets_up(prometheus), 60, f"every target up:\n{prometheus.output()}", interval=1)
    with platform.step("the counters are at 0 in Prometheus before any traffic"):
        def zeros_scraped():
            return len(prometheus.query("cafeflow_uploads_received_total == 0")) == 3 \
                and len(prometheus.query("cafeflow_uploads_finished_total == 0")) == 2 \
                and len(prometheus.query("cafeflow_rows_total == 0")) == 3 \
                and len(prometheus.query('cafeflow_celery_tasks_total{task="transform.load_live_order"} == 0')) == 3 \
                and len(prometheus.query("cafeflow_task_failures_total == 0")) == 9
        wait_for(zeros_scraped, 30, "zero series in Prometheus", interval=1)

    with platform.step(f"post {len(FILES)} real files and one that fails", ["ingest", "worker"]):
        upload_ids = []
        for path in FILES:
            response = httpx.post(f"{platform.url('ingest')}/v1/uploads", headers=admin, timeout=60,
                                  files={"file": (path.name, path.read_bytes(), "text/csv")})
            assert response.status_code == 202, response.text
            upload_ids.append(response.json()["id"])
        response = httpx.post(f"{platform.url('ingest')}/v1/uploads", headers=admin, timeout=60,
                              files={"file": ("shopping-list.csv", FAILING_FILE, "text/csv")})
        assert response.status_code == 202, response.text
        failing_id = response.json()["id"]

        def finished():
            bodies = [httpx.get(f"{platform.url('ingest')}/v1/uploads/{upload_id}", headers=admin, timeout=10).json()
                      for upload_id in [*upload_ids, failing_id]]
            return bodies if all(body["status"] in ("loaded", "failed") for body in bodies) else None
        uploads = wait_for(finished, 180, "every upload loaded or failed", interval=1)
        assert [body["status"] for body in uploads] == ["loaded"] * len(FILES) + ["failed"], uploads
    rows = {outcome: sum(body[f"rows_{outcome}"] for body in uploads) for outcome in ("loaded", "rejected",
                                                                                       "duplicate")}
    assert rows["loaded"] > 0
    deliver_an_order(platform, engine)

    with platform.step("Prometheus has the final figures"):
        def settled():
            live = {"task": "transform.load_live_order", "outcome": "succeeded"}
            if metric(scrape(platform.url("worker")), "cafeflow_celery_tasks_total", **live) != 1:
                return False
            last = prometheus.query('cafeflow_celery_tasks_total{task="transform.load_live_order", '
                                    'outcome="succeeded"}')
            return last and float(last[0]["value"][1]) == 1
        wait_for(settled, 60, "the live order's task in Prometheus", interval=1)
        time.sleep(5)   # two more scrapes and rule evaluations

    def at_last_scrape(expr: str) -> float:
        """The timestamp of the last sample of the first cafeflow metric the expression reads."""
        metric = re.search(r"cafeflow_[a-z_]+", expr)[0]
        for suffix in ("_bucket", "_count", "_sum"):
            metric = metric.removesuffix(suffix)
        result = prometheus.query(f'max(timestamp({{__name__=~"{metric}(_total|_bucket|_count)?"}}))')
        assert result, f"no sample of {metric} in Prometheus: its panel shows No data ({expr})"
        return float(result[0]["value"][1])

    checked = {}
    with platform.step("every Prometheus expression of the dashboard"):
        for title, ref, expr in dashboard_expressions():
            at = at_last_scrape(expr) if "cafeflow_" in expr and ":" not in expr.split("{")[0] else None
            result = prometheus.query(expr, at)
            assert result, f"{title} {ref}: no data for {expr}"
            for sample in result:
                value = float(sample["value"][1])
                assert math.isfinite(value) and value >= 0, f"{title} {ref}: {sample} for {expr}"
            checked[(title, ref)] = result

    def panel(title: str, ref: str = "A") -> list[dict]:
        return checked[(title, ref)]

    n = len(FILES)
    with platform.step("the figures are the traffic's"):
        received = by(panel("Uploads received and finished (per hour)", "A"), "outcome")
        assert received == {("new",): n + 1, ("duplicate",): 0, ("retry",): 0}, received
        finished_by_status = by(panel("Uploads received and finished (per hour)", "B"), "status")
        assert finished_by_status == {("loaded",): n, ("failed",): 1}, finished_by_status
        assert by(panel("Rows loaded, rejected, duplicate (per hour)"), "outcome") == {
            (outcome,): float(count) for outcome, count in rows.items()}
        tasks = by(panel("Celery tasks by outcome (per hour) and workers up", "A"), "task", "outcome")
        assert tasks[("transform.process_upload", "succeeded")] == n + 1, tasks
        assert tasks[("transform.load_live_order", "succeeded")] == 1, tasks
        assert all(tasks[(task, outcome)] == 0 for task, outcome in tasks if outcome != "succeeded"), tasks
        # the sweepers' counts are whatever ran: Prometheus's figure is the worker's own, exactly
        worker = scrape(platform.url("worker"))
        for (task, outcome), value in tasks.items():
            assert metric(worker, "cafeflow_celery_tasks_total", task=task, outcome=outcome) == value, (task, outcome)
        failures = by(panel("Task duration p95 and failures", "B"), "task", "error")
        assert len(failures) == 9 and set(failures.values()) == {0.0}, failures
        durations = by(panel("Task duration p95 and failures", "A"), "task")
        assert durations[("transform.load_live_order",)] > 0, durations      # a live order's duration, not NaN
        assert durations[("transform.process_upload",)] > 0, durations
        assert set(by(panel("5xx share of requests"), "service")) == {("ingest",), ("orders",), ("reporting",)}
        assert set(by(panel("5xx share of requests"), "service").values()) == {0.0}
        assert by(panel("Queue: waiting and unacked messages", "A"), "queue") == {("transform",): 0}
        assert by(panel("Queue: waiting and unacked messages", "B")) == {(): 0}
        assert by(panel("Celery tasks by outcome (per hour) and workers up", "B")) == {(): 1}

    with platform.step("each process's /metrics holds only its own families"):
        for name, expected in FAMILIES.items():
            body = scrape(platform.url(name), flower_auth if name == "flower" else None)
            assert families(body) == expected, f"{name}: {sorted(families(body) ^ expected)}"
