"""The worker's and beat's probe server, the live queue length, Flower's refusal to run open, and the
init containers' wait for migrations."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text
from werkzeug.test import Client

from services.cli import main
from services.common.metrics import QueueLengthCollector
from services.common.probes import probe_app
from tests.support import ROOT


def _client(settings, **overrides):
    registry = CollectorRegistry()
    registry.register(QueueLengthCollector(overrides.get("redis_url", settings.redis_url),
                                           [settings.transform_queue]))
    return Client(probe_app(settings.model_copy(update=overrides), registry))


def test_probes_and_live_queue_length(settings, clean, redis_client):
    client = _client(settings)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and json.loads(ready.data)["checks"] == {"database": "ok", "redis": "ok"}
    redis_client.rpush(settings.transform_queue, b"m1", b"m2", b"m3")
    redis_client.rpush(settings.transform_queue + "\x06\x163", b"m4")   # a priority-3 message
    body = client.get("/metrics").get_data(as_text=True)
    assert f'cafeflow_queue_messages{{queue="{settings.transform_queue}"}} 4.0' in body
    assert "cafeflow_broker_up 1.0" in body
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and json.loads(missing.data)["error"]["code"] == "not_found"
    for path in ("/healthz", "/readyz", "/metrics", "/nowhere"):
        assert client.get(path).headers.get("X-Content-Type-Options") == "nosniff", path


def test_readyz_fails_with_an_unreachable_broker(settings, clean):
    client = _client(settings, redis_url="redis://127.0.0.1:1/0")
    ready = client.get("/readyz")
    assert ready.status_code == 503
    error = json.loads(ready.data)["error"]
    assert error["code"] == "not_ready" and error["details"]["redis"].startswith("unreachable")
    body = client.get("/metrics").get_data(as_text=True)
    assert "cafeflow_broker_up 0.0" in body and "cafeflow_queue_messages{" not in body


def test_flower_refuses_to_start_without_basic_auth(monkeypatch):
    # ... and every account of a list must be strong (compose adds Prometheus's own after the operator's)
    for value in (None, "admin", "admin:short", "admin:a-long-enough-password,prometheus:short"):
        if value is None:
            monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
        else:
            monkeypatch.setenv("FLOWER_BASIC_AUTH", value)
        result = CliRunner().invoke(main, ["flower"])
        assert result.exit_code == 1 and "FLOWER_BASIC_AUTH" in result.output, (value, result.output)


def test_flower_refuses_to_listen_beyond_loopback_without_auth_even_in_development(tmp_path):
    """Run as a process: were it to start, it would serve (the timeout fails the test instead of hanging)."""
    from tests.support import free_port

    env = {**os.environ, "CAFEFLOW_ENV": "development"}
    env.pop("FLOWER_BASIC_AUTH", None)
    for host in ("0.0.0.0", "::", "192.0.2.10", "flower.example"):
        result = subprocess.run([sys.executable, "-m", "services.cli", "flower", "--host", host,
                                 "--port", str(free_port())], env=env, cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 1 and "FLOWER_BASIC_AUTH" in result.stderr, (host, result.stderr)


def test_flower_without_auth_is_allowed_only_on_loopback_in_development():
    from services.cli import flower_auth_problem

    strong = "flower:a-password-of-16-chars"
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert flower_auth_problem("development", host, "") is None, host
    assert flower_auth_problem("development", "0.0.0.0", "") is not None
    assert flower_auth_problem("development", "0.0.0.0", "flower:short") is not None
    assert flower_auth_problem("development", "0.0.0.0", strong) is None
    assert flower_auth_problem("production", "127.0.0.1", "") is not None
    assert flower_auth_problem("test", "0.0.0.0", strong) is None


def test_make_up_writes_flower_credentials_that_flower_accepts_also_into_an_older_env(tmp_path):
    from services.cli import flower_auth_problem

    script = str(ROOT / "scripts" / "dev-env.sh")
    fresh = subprocess.run([script], capture_output=True, text=True, check=True).stdout
    credentials = [line.partition("=")[2] for line in fresh.splitlines() if line.startswith("FLOWER_BASIC_AUTH=")]
    assert len(credentials) == 1 and flower_auth_problem("production", "0.0.0.0", credentials[0]) is None
    complete, older = tmp_path / "complete.env", tmp_path / "older.env"
    complete.write_text(fresh)
    older.write_text("\n".join(line for line in fresh.splitlines() if not line.startswith("FLOWER_BASIC_AUTH=")))
    assert subprocess.run([script, "--missing", str(complete)], capture_output=True, text=True,
                          check=True).stdout == ""
    added = subprocess.run([script, "--missing", str(older)], capture_output=True, text=True, check=True).stdout
    assert added.startswith("FLOWER_BASIC_AUTH=cafeflow:") and added.count("\n") == 1
    assert flower_auth_problem("production", "0.0.0.0", added.strip().partition("=")[2]) is None


def _migrate(database_url: str, *args: str, background: bool = False):
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "CAFEFLOW_ENV": "test",
           "DATABASE_URL": database_url, "CAFEFLOW_SECRET_KEY": "wait-test-secret-key-0123456789abcdef",
           "CAFEFLOW_ADMIN_TOKEN": "wait-test-admin-token-0123456789abcdef"}
    argv = [sys.executable, "-m", "services.cli", "migrate", *args]
    if background:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, check=False, text=True, timeout=300)


def test_migrate_wait_blocks_until_the_migration_ran(engine):
    """The init containers' `cafeflow migrate --wait`: fails on a never-migrated database after its timeout,
    passes once a concurrent `cafeflow migrate` (the Job) finished, and passes for a schema newer than
    this code (a rollback must not hang)."""
    from sqlalchemy.engine import make_url

    scratch = make_url(engine.url).set(database=f"{engine.url.database}_wait")
    url = scratch.render_as_string(hide_password=False)
    admin = create_engine(make_url(engine.url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch.database}"'))
        conn.execute(text(f'CREATE DATABASE "{scratch.database}"'))
    try:
        refused = _migrate(url, "--wait", "0.5")
        assert refused.returncode == 1 and "not at head" in refused.stdout + refused.stderr
        assert "ingest" in refused.stderr and "warehouse" in refused.stderr
        waiting = _migrate(url, "--wait", "120", background=True)
        time.sleep(1.5)
        assert waiting.poll() is None, waiting.communicate()[0]   # still waiting: nothing migrated yet
        applied = _migrate(url)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        output, _ = waiting.communicate(timeout=60)
        assert waiting.returncode == 0 and "all schemas at head" in output, output
        scratch_engine = create_engine(scratch)
        with scratch_engine.begin() as conn:
            conn.execute(text("UPDATE ingest.alembic_version SET version_num = 'from_a_newer_release'"))
        scratch_engine.dispose()
        assert _migrate(url, "--wait", "0.5").returncode == 0
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch.database}" WITH (FORCE)'))
        admin.dispose()
