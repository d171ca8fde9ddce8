"""Shared test support: settings for the test run, real service processes, real-data paths.

The schema is rebuilt once per session through the real migrations (run twice: they must be
idempotent). Tests are isolated by TRUNCATE rather than a rolled-back outer transaction, because many
of them drive real gunicorn and Celery processes, which only see committed data.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
# The 65 real branch files live in the repository (samples/branch-files, see its README): a clone with
# nothing beside it runs every test (tests/test_stands_alone.py checks that no path leaves the repository).
REAL_FILES = ROOT / "samples" / "branch-files"
# Screenshots and other files a test keeps for people to look at (git-ignored).
ARTEFACTS = Path(os.environ.get("CAFEFLOW_TEST_ARTEFACTS", ROOT / "test-artefacts"))
ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123456789"
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789abcdef"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or _with_database(
    os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cafeflow"), "cafeflow_test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or _redis_db(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), 15)

TEST_ENV = {
    "CAFEFLOW_ENV": "test",
    "DATABASE_URL": TEST_DATABASE_URL,
    "REDIS_URL": TEST_REDIS_URL,
    "CAFEFLOW_SECRET_KEY": SECRET_KEY,
    "CAFEFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
    "TRANSFORM_QUEUE": "transform-test",
    "WORKER_METRICS_PORT": "0",
    "BEAT_METRICS_PORT": "0",
    "LOG_LEVEL": "INFO",
}
os.environ.update(TEST_ENV)   # before any settings object is built, in this process and in children

# Tables kept across tests: migration bookkeeping, the warehouse version row (reset to 0 instead) and the
# orders status-transition table (reference data seeded by its migration).
KEPT_TABLES = {"warehouse.version", "orders.status_transition"}


def owned_schemas() -> list[str]:
    from services.common.migrate import HISTORIES

    return [history.schema for history in HISTORIES]


def data_tables(conn) -> list[str]:
    """Every table of the schemas our migrations own, except the version tables: new tables are
    isolated between tests without anyone having to list them here."""
    rows = conn.execute(text(
        "SELECT schemaname || '.' || tablename FROM pg_tables "
        "WHERE schemaname = ANY(:schemas) AND tablename NOT LIKE 'alembic_version%'"),
        {"schemas": owned_schemas()}).scalars()
    return sorted(name for name in rows if name not in KEPT_TABLES)


def ensure_database(url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).scalar()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


# The branches of the real files, registered as an admin would with `cafeflow branch add`.
REAL_BRANCHES = ("Birmingham", "Chesterfield", "Isle of Wight", "Leeds", "London Brixton", "London Camden",
                 "London Piccadilly", "London Soho", "Longridge", "Uppingham")


def register_branches(engine, names) -> None:
    from services.common.naming import branch_key

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO ingest.branch (name, branch_key) VALUES (:name, :key) "
                          "ON CONFLICT (branch_key) DO NOTHING"),
                     [{"name": name, "key": branch_key(name)} for name in names])


def reset_state(engine, redis_client, branches=REAL_BRANCHES) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(data_tables(conn))} RESTART IDENTITY CASCADE"))
        conn.execute(text("UPDATE warehouse.version SET version = 0"))
    redis_client.flushdb()
    if branches:
        register_branches(engine, branches)


# --- processes ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
        self.popen.wait(timeout=60)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


CLI = [sys.executable, "-m", "services.cli"]


class Stack:
    """Real service processes started with the `cafeflow` commands.

    The three web services get their ports up front and each learns all three addresses (CAFEFLOW_*_URL),
    as a deployment configures them: the pages send browsers to orders' /signin and back by those."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[Process] = []
        self.ports = {name: free_port() for name in ("ingest", "orders", "reporting")}
        self.ingest_url: str | None = None
        self.orders_url: str | None = None

    def url_of(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def public_urls_env(self) -> dict[str, str]:
        return {f"CAFEFLOW_{name.upper()}_URL": self.url_of(name) for name in self.ports}

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, CLI + args, self.log_dir, {**self.public_urls_env(), **(env or {})})
        self.processes.append(process)
        return process

    def _start_web(self, service: str, workers: int, env: dict[str, str] | None, probe: str = "/readyz") -> str:
        url = self.url_of(service)
        process = self.start(service, ["serve", service, "--port", str(self.ports[service]), "--host", "127.0.0.1",
                                       "--workers", str(workers)], env)
        wait_until(lambda: _ready(url, probe), 60, lambda: f"{service} did not become ready:\n{process.output()}")
        return url

    def start_ingest(self, env: dict[str, str] | None = None) -> str:
        self.ingest_url = self._start_web("ingest", 2, env)
        return self.ingest_url

    def start_reporting(self, env: dict[str, str] | None = None) -> str:
        return self._start_web("reporting", 1, env)

    def start_orders(self, env: dict[str, str] | None = None, probe: str = "/readyz", workers: int = 2) -> str:
        """The orders service under gunicorn; probe "/healthz" when its Redis is meant to be unreachable."""
        self.orders_url = self._start_web("orders", workers, env, probe)
        return self.orders_url

    def start_worker(self, concurrency: int = 2, env: dict[str, str] | None = None) -> Process:
        process = self.start("worker", ["worker", "--concurrency", str(concurrency)], env)
        wait_until(lambda: "ready." in process.output() or process.popen.poll() is not None, 60,
                   "worker did not start")
        assert process.popen.poll() is None, process.output()
        return process

    def start_beat(self, env: dict[str, str] | None = None) -> Process:
        schedule = self.log_dir / f"beat-schedule-{time.monotonic_ns()}"
        return self.start("beat", ["beat", "--schedule", str(schedule)], env)

    def logs(self) -> str:
        return "\n".join(p.output() for p in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _ready(url: str, probe: str = "/readyz") -> bool:
    try:
        return httpx.get(f"{url}{probe}", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(predicate, timeout: float, message: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message() if callable(message) else message)




# --- project-local servers a test may stop and start (never the shared ones) -------------------
def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL's tools refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--"] + argv if os.geteuid() == 0 else argv


def _pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
    return found[-1].parent


class LocalPostgres:
    """A throwaway PostgreSQL cluster on its own loopback port (as scripts/ensure-services.sh makes one), for
    tests and benchmarks that stop, crash and restart the database. Its files live under /var/tmp (the postgres
    user cannot enter root's pytest directories) and go when `remove()` runs."""

    def __init__(self, name: str = "cafeflow") -> None:
        import tempfile

        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix=f"cafeflow-pg-{self.port}-", dir="/var/tmp"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.name = name
        self.bindir = _pg_bindir()
        if os.geteuid() == 0:
            subprocess.run(["chown", "postgres:", str(self.base)], check=True)
        subprocess.run(_as_postgres([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                                     "--auth=trust", "--no-sync"]), check=True, capture_output=True)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.base}'\nfsync = off\nmax_connections = 100\n")
        self.start()
        try:
            ensure_database(self.url)
        except Exception:
            self.remove()
            raise

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.name}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                                     "-t", "60", *args]), check=True, capture_output=True)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        """fast: a clean shutdown (sessions ended); immediate: a crash (recovery from the WAL at the next start)."""
        self._ctl("-m", mode, "stop")

    def remove(self) -> None:
        import shutil

        if (self.data / "postmaster.pid").exists():
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


class LocalRedis:
    """A throwaway redis-server on its own loopback port without persistence: stopping it and starting it again
    is a Redis restarted empty."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.log_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        import redis

        wait_until(lambda: _redis_answers(redis, self.url), 30, "the local redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def _redis_answers(redis, url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
