"""Fixtures on real PostgreSQL and Redis (see tests/support.py for the harness itself).

The schema is rebuilt once per session through the real migrations (run twice: they must be
idempotent). Tests are isolated by TRUNCATE rather than a rolled-back outer transaction, because many
of them drive real gunicorn and Celery processes, which only see committed data.
"""
from __future__ import annotations

import weakref

import pytest
import redis
from sqlalchemy import Engine, create_engine, event, text

from tests.support import ADMIN_TOKEN, Stack, ensure_database, owned_schemas, reset_state


# Every engine that ever connected in this process (each app a test builds has its own pool).
_ENGINES: weakref.WeakSet = weakref.WeakSet()


@event.listens_for(Engine, "engine_connect")
def _remember_engine(connection) -> None:
    _ENGINES.add(connection.engine)


@pytest.fixture(autouse=True)
def _close_pooled_connections():
    """After each test, the pooled connections of every app built so far are closed (the next use opens new
    ones). Apps live on after their test (reporting's create_app gc.freeze()s what exists, so they are never
    collected), and their idle pools would otherwise hold PostgreSQL's connection slots, which the engineers'
    parallel suites share, until "too many clients"."""
    yield
    for engine in list(_ENGINES):
        engine.dispose()


@pytest.fixture(scope="session")
def settings():
    from services.common.settings import Settings

    return Settings()


@pytest.fixture(scope="session")
def engine(settings):
    from services.common.migrate import upgrade_all

    ensure_database(settings.database_url)
    eng = create_engine(settings.database_url)
    with eng.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {', '.join(owned_schemas())} CASCADE"))
    upgrade_all(settings.database_url)
    upgrade_all(settings.database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def redis_client(settings):
    client = redis.Redis.from_url(settings.redis_url)
    client.ping()
    yield client
    client.close()


@pytest.fixture
def clean(engine, redis_client):
    reset_state(engine, redis_client)
    return engine


@pytest.fixture
def ingest_app(settings, clean):
    from services.ingest.app import create_app

    return create_app(settings)


@pytest.fixture
def client(ingest_app):
    return ingest_app.test_client()


@pytest.fixture
def admin_headers():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
def celery_app(settings):
    from services.transform.celery_app import create_celery

    app = create_celery(settings)
    app.loader.import_default_modules()     # the modules a worker imports: every task registers on this app

    return app


@pytest.fixture
def run_task(celery_app):
    """Runs a task in this process, as a worker would, and returns its result."""
    def run(name: str, *args):
        result = celery_app.tasks[name].apply(args=list(args))
        if result.failed():
            raise result.result
        return result.result
    return run


@pytest.fixture
def stack(tmp_path, clean):
    running = Stack(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def branch_token(clean):
    """Creates a branch with `cafeflow branch add` and returns its printed token."""
    from click.testing import CliRunner

    from services.cli import main

    def make(name: str) -> str:
        result = CliRunner().invoke(main, ["branch", "add", name])
        assert result.exit_code == 0, result.output
        return result.output.strip()
    return make


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (make test installs it via scripts/ensure-chromium.sh).

    The flags keep Chromium from reaching for Google's hosts, which a branch network (and this machine)
    cannot reach."""
    import os

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()
