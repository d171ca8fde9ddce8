"""Running the processes a deploy file describes on this machine: its exact command and environment,
with the files' host names (postgres, redis, the services) mapped to the local test database, Redis
database and loopback (used by test_host_run.py)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import text
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.manifests import ProcessSpec
from tests.support import ROOT, TEST_DATABASE_URL, TEST_REDIS_URL

START_ORDER = ("ingest", "orders", "reporting", "worker", "beat", "flower")
# The variables a test run provides to docker compose, as an operator's .env would.
COMPOSE_DOTENV = {
    "POSTGRES_PASSWORD": "compose-test-postgres-password",
    "CAFEFLOW_SECRET_KEY": "compose-test-secret-key-0123456789abcdef0123456789",
    "CAFEFLOW_ADMIN_TOKEN": "compose-test-admin-token-0123456789abcdef0123",
    "FLOWER_BASIC_AUTH": "flower:compose-test-flower-password",
    "FLOWER_METRICS_PASSWORD": "compose-test-prometheus-password",
    "GRAFANA_ADMIN_PASSWORD": "compose-test-grafana-password",
    "GRAFANA_DB_PASSWORD": "compose-test-grafana-db-password",
}


class HostProcess:
    def __init__(self, spec: ProcessSpec, env: dict[str, str], workdir: Path, log_dir: Path) -> None:
        self.spec = spec
        self.log_path = log_dir / f"{spec.name}.log"
        self._log = self.log_path.open("wb")
        # cwd is an empty folder, like the image's WORKDIR: no stray .env is read.
        self.popen = subprocess.Popen(spec.argv, cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._log.close()


class Platform:
    def __init__(self, label: str, specs: dict[str, ProcessSpec], tmp_path: Path) -> None:
        self.label = label
        self.specs = specs
        self.workdir = tmp_path / "workdir"
        self.workdir.mkdir()
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir()
        self.log_dir = tmp_path / "logs"
        self.log_dir.mkdir()
        self.processes: dict[str, HostProcess] = {}
        self.host_names = {"postgres", "redis", *specs}

    def env_for(self, spec: ProcessSpec) -> dict[str, str]:
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(self.workdir),
               "LANG": "C.UTF-8", "TMPDIR": str(self.tmpdir), "HOSTNAME": socket.gethostname()}
        for key, value in spec.env.items():
            env[key] = self._localise(spec.name, key, value)
        return env

    def _localise(self, service: str, key: str, value: str) -> str:
        """Maps the files' network to this machine; anything unexpected fails here, not later."""
        if key == "DATABASE_URL":
            url = urlsplit(value)
            assert url.scheme.startswith("postgres") and url.hostname == "postgres" and (url.port or 5432) == 5432, \
                f"{self.label} {service}: DATABASE_URL {url.scheme}://{url.hostname}:{url.port} is not postgres:5432"
            return TEST_DATABASE_URL
        if key == "REDIS_URL":
            url = urlsplit(value)
            assert url.scheme == "redis" and url.hostname == "redis" and (url.port or 6379) == 6379, \
                f"{self.label} {service}: REDIS_URL host/port is not redis:6379"
            return TEST_REDIS_URL
        if value.startswith("http://"):
            url = urlsplit(value)
            if url.hostname in self.host_names:
                return urlunsplit(url._replace(netloc=f"127.0.0.1:{url.port or 80}"))
        return value

    def run(self, name: str | ProcessSpec, extra_args: list[str] | None = None, stdin: str | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess:
        spec = self.specs[name] if isinstance(name, str) else name
        argv = [self._host_path(spec, part) for part in spec.argv + (extra_args or [])]
        return subprocess.run(argv, cwd=self.workdir, env=self.env_for(spec), input=stdin, capture_output=True,
                              check=False, text=True, timeout=timeout)

    def _host_path(self, spec: ProcessSpec, arg: str) -> str:
        for container, host in spec.mounts.items():
            if arg == container or arg.startswith(container + "/"):
                return str((ROOT / host).resolve()) + arg[len(container):]
        return arg

    def start(self, name: str) -> None:
        spec = self.specs[name]
        self.processes[name] = HostProcess(spec, self.env_for(spec), self.workdir, self.log_dir)

    def start_all(self, services: list[str]) -> None:
        """The one-shot migration, then each service (its init containers first), until each answers its
        readiness path."""
        with self.step("migrate (one-shot)"):
            result = self.run("migrate", timeout=300)
            assert result.returncode == 0, result.stdout + result.stderr
        for name in services:
            for init in self.specs[name].init:
                with self.step(f"{name} init container {init.name}: {' '.join(init.argv)}"):
                    result = self.run(init, timeout=120)
                    assert result.returncode == 0, result.stdout + result.stderr
            self.start(name)
        for name in services:
            path = "/healthcheck" if name == "flower" else "/readyz"
            with self.step(f"{name} answers {path} on port {self.port(name)}", [name]):
                process = self.processes[name]
                url = f"{self.url(name)}{path}"
                wait_for(lambda process=process, url=url: process.popen.poll() is not None
                         or httpx.get(url, timeout=3).status_code == 200, 90, f"{name} {path}")
                assert process.popen.poll() is None, f"{name} exited with {process.popen.returncode}"

    def port(self, name: str) -> int:
        assert self.specs[name].ports, f"{self.label} {name}: no port declared"
        return self.specs[name].ports[0]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def logs(self, names=None) -> str:
        parts = []
        for name, process in self.processes.items():
            if names is None or name in names:
                parts.append(f"--- {name} (exit {process.popen.poll()}) ---\n{process.output()[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()

    @contextmanager
    def step(self, name: str, services=None):
        print(f"[{self.label}] step: {name}", flush=True)
        try:
            yield
        except Exception as exc:  # re-raised with the step's name and the logs
            raise AssertionError(f"[{self.label}] step '{name}' failed: {type(exc).__name__}: {exc}\n"
                                 f"{self.logs(services)}") from exc


def deliver_an_order(platform: Platform, engine) -> int:
    """Through the orders service alone: a user added with the CLI signs in for a token, creates a product, a
    courier and an order, and moves it to delivered; returns once its live sale is in the warehouse."""
    orders_url = platform.url("orders")
    with platform.step("orders: add a user with the CLI and get a token", ["orders"]):
        password = "deploy-check-password-0123"
        result = subprocess.run(
            [platform.specs["orders"].argv[0], "user", "add", "deploy-admin", "--role", "admin"], input=f"{password}\n",
            cwd=platform.workdir, env=platform.env_for(platform.specs["orders"]), capture_output=True, check=False,
            text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        response = httpx.post(f"{orders_url}/v1/auth/token", json={"username": "deploy-admin",
                                                                    "password": password}, timeout=10)
        assert response.status_code == 200, response.text
        staff = {"Authorization": f"Bearer {response.json()['access_token']}"}
    with platform.step("orders: create a product, a courier and an order", ["orders"]):
        response = httpx.post(f"{orders_url}/v1/products", headers=staff, timeout=10, json={
            "name": "Flavoured latte", "size": "Large", "flavour": "Vanilla", "price": "2.85"})
        assert response.status_code == 201, response.text
        product_id = response.json()["id"]
        response = httpx.post(f"{orders_url}/v1/couriers", headers=staff, timeout=10, json={
            "name": "Deploy Courier", "phone": "07700900123", "branch": "Leeds"})
        assert response.status_code == 201, response.text
        courier_id = response.json()["id"]
        response = httpx.post(f"{orders_url}/v1/orders", headers=staff, timeout=10, json={
            "branch": "Leeds", "customer_name": "Deploy Check", "customer_address": "1 Test Street, Leeds",
            "customer_phone": "07700900456", "courier_id": courier_id, "payment_method": "CARD",
            "items": [{"product_id": product_id, "quantity": 2}]})
        assert response.status_code == 201, response.text
        order_id, etag = response.json()["id"], response.headers["ETag"]
        path = ["preparing", "out_for_delivery", "delivered"]
        assert response.json()["status"] in path, response.text
    for status in path[path.index(response.json()["status"]) + 1:]:
        with platform.step(f"orders: order {order_id} -> {status}", ["orders"]):
            response = httpx.post(f"{orders_url}/v1/orders/{order_id}/status", json={"status": status},
                                  headers={**staff, "If-Match": etag}, timeout=10)
            assert response.status_code == 200, response.text
            etag = response.headers.get("ETag", etag)
    with platform.step("the delivered order reaches the warehouse (worker)", ["orders", "worker", "beat"]):
        def live_sales():
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction "
                                         "WHERE source = 'live'")).scalar()
        wait_for(live_sales, 90, "a live sale in warehouse.fact_transaction")
    return order_id


def wait_for(predicate, timeout: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last!r})")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def metric(body: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def scrape(url: str, auth=None) -> str:
    response = httpx.get(f"{url}/metrics", timeout=10, auth=auth)
    assert response.status_code == 200, f"{url}/metrics -> {response.status_code}"
    return response.text
