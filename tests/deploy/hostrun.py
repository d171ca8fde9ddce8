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
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.manifests import ProcessSpec
from tests.support import ROOT, TEST_DATABASE_URL, TEST_REDIS_URL


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
