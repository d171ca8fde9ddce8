"""A dependency that does not answer is a 503 with Retry-After in the JSON error shape on every endpoint of every
service, never a 500 (services/common/outages.py); a statement stopped by its timeout says how long it may take.
The real outage (a PostgreSQL the test stops and starts, with `cafeflow upload` riding it out) is in
tests/e2e/test_outage.py."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.common.service_apps import create_apps, every_route
from tests.support import ADMIN_TOKEN, free_port

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Answered without the dependency at all (liveness, readiness's own 503, static documents).
NEEDS_NOTHING = ("/healthz", "/readyz", "/metrics", "/favicon.ico", "/openapi.json", "/docs")


def answers_while_down(apps):
    """Every route of every app, as an admin would call it."""
    for service, app in apps.items():
        client = app.test_client()
        for method, url in every_route(app):
            if url.startswith(NEEDS_NOTHING) or "/static/" in url or url.startswith("/docs"):
                continue
            body = {"json": {}} if method in ("POST", "PUT", "PATCH", "DELETE") else {}
            yield service, method, url, client.open(url, method=method, headers=ADMIN, **body)


def test_every_endpoint_answers_503_with_retry_after_while_the_database_is_down(settings, clean):
    down = settings.model_copy(update={"database_url": settings.database_url.replace(":5432/", f":{free_port()}/")})
    assert down.database_url != settings.database_url
    checked = 0
    for service, method, url, response in answers_while_down(create_apps(down)):
        assert response.status_code != 500, (service, method, url, response.get_data(as_text=True))
        if response.status_code == 503:
            checked += 1
            assert int(response.headers["Retry-After"]) > 0, (service, method, url)
            if response.mimetype == "application/json":
                assert response.get_json()["error"]["code"] in ("database_unavailable", "accounts_unavailable")
    assert checked >= 15          # the API endpoints of all three services (some refuse the request first: 422)


def test_every_endpoint_answers_without_a_500_while_redis_is_down(settings, clean):
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    for service, method, url, response in answers_while_down(create_apps(down)):
        assert response.status_code != 500, (service, method, url, response.get_data(as_text=True))
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) > 0, (service, method, url)


def test_posting_a_file_while_the_database_is_down_is_a_503_the_client_can_retry(settings, clean):
    from services.ingest.app import create_app

    down = settings.model_copy(update={"database_url": settings.database_url.replace(":5432/", f":{free_port()}/")})
    import io

    response = create_app(down).test_client().post(
        "/v1/uploads", data={"file": (io.BytesIO(b"01/03/2024 09:00,Leeds,A,\"Latte - 2.45\",2.45,CASH,\n"),
                                      "day.csv")}, headers=ADMIN)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert "try again" in response.get_json()["error"]["message"]
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("service,setting", [("ingest", "web_statement_timeout_ms"),
                                             ("reporting", "reporting_statement_timeout_ms")])
def test_a_statement_stopped_by_its_timeout_says_how_long_it_may_take(settings, clean, service, setting):
    """The request's query waits behind a lock the test holds until the service's statement timeout stops it."""
    import importlib

    quick = settings.model_copy(update={setting: 300})
    client = importlib.import_module(f"services.{service}.app").create_app(quick).test_client()
    url, table = {"ingest": ("/v1/uploads", "ingest.upload"),
                  "reporting": ("/v1/reports/sales?group_by=branch&from=2024-01-01&to=2024-01-31",
                                "warehouse.version")}[service]
    with clean.connect() as conn:
        conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        response = client.get(url, headers=ADMIN)
        conn.rollback()
    assert response.status_code == 503, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "statement_timeout"
    assert "took longer than 0.3 s" in error["message"]
    assert int(response.headers["Retry-After"]) > 0
