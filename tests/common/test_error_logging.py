"""An unexpected error answers the JSON 500 shape and logs where it happened, never what it said: an
exception's text (a database error's DETAIL quotes the row) may hold personal data."""
from __future__ import annotations

import json

from services.common.web import create_service_app


def test_unhandled_errors_log_the_frames_but_not_the_message(settings, capsys):
    # The factory configures the JSON logs on stdout: what is asserted is the log as it is written.
    app, _api, _db = create_service_app(__name__, service="test", settings=settings, title="t", description="d")

    customer = "Zoë Quarterly"

    @app.get("/boom")
    def boom():
        raise ValueError(f"DETAIL: Key (customer_name)=({customer}) already exists")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "Zoë" not in response.get_data(as_text=True)
    written = capsys.readouterr().out
    records = [json.loads(line) for line in written.splitlines() if line.startswith("{")]
    (record,) = [r for r in records if r["message"] == "unhandled error: ValueError"]
    assert "exc_info" not in record and "def boom" not in record["traceback"] and "boom" in record["traceback"]
    assert "Zoë" not in written


def test_a_database_error_never_quotes_the_statements_parameters(settings):
    """Celery logs a task's exception text and keeps it as the task's result: the engine leaves the bound
    values (a customer's name, a live order's payload) out of it."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from services.common.db import Database

    db = Database(settings.database_url)
    with pytest.raises(DBAPIError) as raised, db.session() as session:
        session.execute(text("SELECT 1 / 0 WHERE CAST(:name AS text) IS NOT NULL"), {"name": "Zoë Quarterly"})
    assert "division by zero" in str(raised.value) and "Zoë" not in str(raised.value)
    db.engine.dispose()
