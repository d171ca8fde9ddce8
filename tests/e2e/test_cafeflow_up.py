"""`cafeflow up` (what `make up` runs): migrate, every service, a worker and beat; Ctrl-C stops all."""
from __future__ import annotations

import os
import signal
import socket
import subprocess

import httpx
import psutil
import pytest

from tests.support import ADMIN_TOKEN, CLI, REAL_FILES, Process, Stack, free_port, wait_until

pytestmark = pytest.mark.e2e


FLOWER_AUTH = ("cafeflow", "flower-password-0123456789")


def _up(tmp_path, **ports: int) -> Process:
    env = {"CAFEFLOW_INGEST_PORT": str(ports["ingest"]), "CAFEFLOW_ORDERS_PORT": str(ports["orders"]),
           "CAFEFLOW_REPORTING_PORT": str(ports["reporting"]), "WORKER_METRICS_PORT": str(ports["worker"]),
           "BEAT_METRICS_PORT": str(ports["beat"]), "FLOWER_PORT": str(ports["flower"]),
           "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)}
    return Process("up", CLI + ["up", "--workers", "1", "--concurrency", "1"], tmp_path, env=env)


def _ports() -> dict[str, int]:
    return {name: free_port() for name in ("ingest", "orders", "reporting", "worker", "beat", "flower")}


def _banner(up: Process) -> str:
    wait_until(lambda: "cafeflow is ready:" in up.output(), 150, lambda: f"no ready banner:\n{up.output()}")
    return up.output().split("cafeflow is ready:", 1)[1].split("Ctrl-C stops everything.", 1)[0]


def test_up_runs_the_platform_and_stops_on_ctrl_c(clean, tmp_path):
    ports = _ports()
    port, orders_port, reporting_port = ports["ingest"], ports["orders"], ports["reporting"]
    worker_metrics, beat_metrics = ports["worker"], ports["beat"]
    up = _up(tmp_path, **ports)
    url = f"http://127.0.0.1:{port}"
    try:
        for name, service_port in (("ingest", port), ("orders", orders_port), ("reporting", reporting_port)):
            wait_until(lambda p=service_port: _ready(f"http://127.0.0.1:{p}"), 90,
                       lambda n=name: f"{n} never ready:\n{up.output()}")
        # One banner, once everything answers, with every address a person opens.
        banner = _banner(up)
        for address in (f"http://127.0.0.1:{orders_port}/app", f"http://127.0.0.1:{port}/portal",
                        f"http://127.0.0.1:{reporting_port}/dashboard",
                        f"http://127.0.0.1:{orders_port}/signin", f"http://127.0.0.1:{port}/docs",
                        f"http://127.0.0.1:{orders_port}/docs", f"http://127.0.0.1:{reporting_port}/docs",
                        f"http://127.0.0.1:{ports['flower']}", f"http://127.0.0.1:{worker_metrics}/metrics",
                        f"http://127.0.0.1:{beat_metrics}/metrics"):
            assert address in banner, banner
        assert "not answering" not in banner and FLOWER_AUTH[1] not in up.output()     # no password printed
        children = psutil.Process(up.popen.pid).children(recursive=True)
        commands = " ".join(" ".join(c.cmdline()) for c in children)
        for part in ("services.ingest.app:create_app()", "services.orders.app:create_app()",
                     "services.reporting.app:create_app()", "cli worker", "cli beat", "cli flower"):
            assert part in commands, commands
        # Flower is part of the platform, behind the basic auth make up writes to .env.
        flower = f"http://127.0.0.1:{ports['flower']}/"
        assert httpx.get(flower, timeout=10).status_code == 401
        assert httpx.get(flower, auth=FLOWER_AUTH, timeout=10).status_code == 200
        # The worker's and beat's metrics listen on loopback under `up`, like the web services.
        for metrics_port in (worker_metrics, beat_metrics):
            wait_until(lambda p=metrics_port: _listening(p), 60, f"nothing listens on {metrics_port}:\n{up.output()}")
            assert _listening(metrics_port) == {"127.0.0.1"}, _listening(metrics_port)
        # The pages send browsers to the sign-in page of the orders port `up` chose, and back.
        dashboard = httpx.get(f"http://127.0.0.1:{reporting_port}/dashboard")
        assert dashboard.status_code == 303 and dashboard.headers["Location"] == (
            f"http://127.0.0.1:{orders_port}/signin?next=http%3A%2F%2F127.0.0.1%3A{reporting_port}%2Fdashboard")
        # The token from the environment (nothing on the command line), the first rejection reasons of each
        # file, and one summary line at the end.
        broken = tmp_path / "leeds_broken.csv"
        good_line = (REAL_FILES / "leeds_26-08-2021_09-00-00.csv").read_text().splitlines()[0]
        broken.write_text(good_line + "\nnot a date,Leeds,Someone,nothing,1.00,CASH,\n")
        result = subprocess.run(CLI + ["upload", str(REAL_FILES / "leeds_25-08-2021_09-00-00.csv"), str(broken),
                                       "--url", url, "--timeout", "120"],
                                env={**os.environ, "CAFEFLOW_TOKEN": ADMIN_TOKEN, "CAFEFLOW_ADMIN_TOKEN": ""},
                                capture_output=True, text=True, timeout=180)
        lines = result.stdout.splitlines()
        assert result.returncode == 1 and "382 loaded" in result.stdout, result.stdout + result.stderr
        assert "visible to other users" not in result.stderr
        reasons = [line.strip() for line in lines if line.startswith("          line ")]
        assert len(reasons) == 1 and reasons[0].startswith("line 2: "), result.stdout
        assert lines[-1] == ("2 files: 1 clean, 1 with rejected rows, 0 failed, 0 not posted; "
                             "rows: 383 loaded, 1 rejected, 0 duplicate"), result.stdout
        report = httpx.get(f"http://127.0.0.1:{reporting_port}/v1/reports/sales",
                           params={"group_by": "branch", "from": "2021-08-25", "to": "2021-08-25"},
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
        assert report.status_code == 200 and report.json()["rows"][0]["transactions"] == 382, report.text
        # One log line per request: the app's JSON access line, no second line from gunicorn.
        wait_until(lambda: "/v1/reports/sales" in up.output(), 10, "the report request was not logged")
        assert sum("/v1/reports/sales" in line for line in up.output().splitlines()) == 1, up.output()[-3000:]
        # A worker that dies (a SIGKILL here; Celery's Redis transport on a broker blip) is started again, as a
        # Deployment would, and the next file loads; the rest of the platform never stopped.
        [worker] = [c for c in psutil.Process(up.popen.pid).children() if "cli worker" in " ".join(c.cmdline())]
        worker.kill()
        wait_until(lambda: "worker exited with -9; starting it again" in up.output(), 30, lambda: up.output()[-3000:])
        again = subprocess.run(CLI + ["upload", str(REAL_FILES / "leeds_26-08-2021_09-00-00.csv"), "--url", url,
                                      "--timeout", "120"], env={**os.environ, "CAFEFLOW_TOKEN": ADMIN_TOKEN},
                               capture_output=True, text=True, timeout=180)
        assert again.returncode == 0 and "1 clean" in again.stdout.splitlines()[-1], again.stdout + again.stderr
        assert up.popen.poll() is None
        children = psutil.Process(up.popen.pid).children(recursive=True)
    finally:
        up.popen.send_signal(signal.SIGINT)
        up.popen.wait(timeout=60)
        up.stop()
    assert up.popen.returncode == 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_a_metrics_port_held_by_another_process_does_not_take_the_platform_down(clean, tmp_path):
    ports = _ports()
    with socket.socket() as holder:                    # another program on the worker's metrics port
        holder.bind(("127.0.0.1", ports["worker"]))
        holder.listen()
        up = _up(tmp_path, **ports)
        try:
            banner = _banner(up)
            said = f"port {ports['worker']} (worker metrics) is in use by another process"
            assert said in up.output() and "set WORKER_METRICS_PORT to a free port" in up.output(), up.output()
            assert (f"worker metrics: not served, port {ports['worker']} is in use by another process "
                    "(WORKER_METRICS_PORT)") in banner, banner
            for service in ("ingest", "orders", "reporting"):            # the pages are served
                assert _ready(f"http://127.0.0.1:{ports[service]}"), up.output()
            assert httpx.get(f"http://127.0.0.1:{ports['orders']}/app").status_code == 303   # to sign in
            wait_until(lambda: "ready." in up.output(), 60, lambda: f"worker not ready:\n{up.output()}")
            assert up.popen.poll() is None, up.output()
            commands = " ".join(" ".join(c.cmdline()) for c in psutil.Process(up.popen.pid).children(recursive=True))
            assert "cli worker" in commands                            # the worker runs, without metrics
        finally:
            up.popen.send_signal(signal.SIGINT)
            up.popen.wait(timeout=60)
            up.stop()
    assert up.popen.returncode == 0


def test_a_web_port_in_use_is_named_with_the_setting_that_moves_it(clean, tmp_path):
    ports = _ports()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["orders"]))
        holder.listen()
        up = _up(tmp_path, **ports)
        up.popen.wait(timeout=60)
        output = up.output()
        up.stop()
    assert up.popen.returncode == 1
    assert (f"port {ports['orders']} (orders) is in use by another process: cafeflow up cannot start; "
            "set CAFEFLOW_ORDERS_PORT to a free port to use another") in output, output
    assert "migrations" not in output                                   # nothing was started


def test_a_metrics_port_taken_after_the_check_leaves_the_worker_running(clean, tmp_path):
    """The race of the first run: free when `up` looked, taken when the worker binds it. The worker says
    which port and which setting, and works on without metrics."""
    port = free_port()
    stack = Stack(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        try:
            worker = stack.start_worker(concurrency=1, env={"WORKER_METRICS_PORT": str(port),
                                                            "METRICS_HOST": "127.0.0.1"})
            assert worker.popen.poll() is None, worker.output()
            assert f"port {port} on 127.0.0.1 is in use by another process" in worker.output(), worker.output()
            assert "set WORKER_METRICS_PORT to a free port" in worker.output()
            url = stack.start_ingest()
            leeds = (REAL_FILES / "leeds_25-08-2021_09-00-00.csv").read_bytes()
            posted = httpx.post(f"{url}/v1/uploads", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                files={"file": ("leeds.csv", leeds)})
            assert posted.status_code == 202, posted.text
            wait_until(lambda: httpx.get(f"{url}/v1/uploads/{posted.json()['id']}", headers={
                "Authorization": f"Bearer {ADMIN_TOKEN}"}).json()["status"] == "loaded", 90, "not loaded")
        finally:
            stack.stop()


def _listening(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_and_flower_on_a_taken_port_name_it_and_what_moves_it(tmp_path):
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        serve = subprocess.run(CLI + ["serve", "orders", "--host", "127.0.0.1", "--port", str(port)],
                               capture_output=True, text=True, timeout=60)
        flower = subprocess.run(CLI + ["flower", "--host", "127.0.0.1", "--port", str(port)],
                                env={**os.environ, "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)},
                                capture_output=True, text=True, timeout=60)
    assert serve.returncode == 1 and (f"port {port} (orders) is in use by another process: orders cannot start; "
                                      "choose another with --port (cafeflow up: CAFEFLOW_ORDERS_PORT)") in serve.stderr
    assert flower.returncode == 1 and (f"port {port} (Flower) is in use by another process: Flower cannot start; "
                                       "choose another with FLOWER_PORT or --port") in flower.stderr, flower.stderr
