"""`cafeflow up` (what `make up` runs): migrate, every service, a worker and beat; Ctrl-C stops all."""
from __future__ import annotations

import signal
import subprocess

import httpx
import psutil
import pytest

from tests.support import ADMIN_TOKEN, CLI, REAL_FILES, Process, free_port, wait_until

pytestmark = pytest.mark.e2e


def test_up_runs_the_platform_and_stops_on_ctrl_c(clean, tmp_path):
    port, orders_port, reporting_port = free_port(), free_port(), free_port()
    worker_metrics, beat_metrics = free_port(), free_port()
    up = Process("up", CLI + ["up", "--workers", "1", "--concurrency", "1"], tmp_path,
                 env={"CAFEFLOW_INGEST_PORT": str(port), "CAFEFLOW_ORDERS_PORT": str(orders_port),
                      "CAFEFLOW_REPORTING_PORT": str(reporting_port), "WORKER_METRICS_PORT": str(worker_metrics),
                      "BEAT_METRICS_PORT": str(beat_metrics)})
    url = f"http://127.0.0.1:{port}"
    try:
        for name, service_port in (("ingest", port), ("orders", orders_port), ("reporting", reporting_port)):
            wait_until(lambda p=service_port: _ready(f"http://127.0.0.1:{p}"), 90,
                       lambda n=name: f"{n} never ready:\n{up.output()}")
        children = psutil.Process(up.popen.pid).children(recursive=True)
        commands = " ".join(" ".join(c.cmdline()) for c in children)
        for part in ("services.ingest.app:create_app()", "services.orders.app:create_app()",
                     "services.reporting.app:create_app()", "cli worker", "cli beat"):
            assert part in commands, commands
        # The worker's and beat's metrics listen on loopback under `up`, like the web services.
        for metrics_port in (worker_metrics, beat_metrics):
            wait_until(lambda p=metrics_port: _listening(p), 60, f"nothing listens on {metrics_port}:\n{up.output()}")
            assert _listening(metrics_port) == {"127.0.0.1"}, _listening(metrics_port)
        # The pages send browsers to the sign-in page of the orders port `up` chose, and back.
        dashboard = httpx.get(f"http://127.0.0.1:{reporting_port}/dashboard")
        assert dashboard.status_code == 303 and dashboard.headers["Location"] == (
            f"http://127.0.0.1:{orders_port}/signin?next=http%3A%2F%2F127.0.0.1%3A{reporting_port}%2Fdashboard")
        result = subprocess.run(CLI + ["upload", str(REAL_FILES / "leeds_25-08-2021_09-00-00.csv"),
                                       "--url", url, "--token", ADMIN_TOKEN, "--timeout", "120"],
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0 and "382 loaded" in result.stdout, result.stdout + result.stderr
        report = httpx.get(f"http://127.0.0.1:{reporting_port}/v1/reports/sales",
                           params={"group_by": "branch", "from": "2021-08-25", "to": "2021-08-25"},
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
        assert report.status_code == 200 and report.json()["rows"][0]["transactions"] == 382, report.text
    finally:
        up.popen.send_signal(signal.SIGINT)
        up.popen.wait(timeout=60)
        up.stop()
    assert up.popen.returncode == 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def _listening(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
