"""An unexpected error answers the JSON 500 shape and logs where it happened, never what it said: an
exception's text (a database error's DETAIL quotes the row) may hold personal data."""
from __future__ import annotations

import logging

from services.common.web import create_service_app


def test_unhandled_errors_log_the_frames_but_not_the_message(settings, caplog):
    app, _api, _db = create_service_app(__name__, service="test", settings=settings, title="t", description="d")

    customer = "Zoë Quarterly"

    @app.get("/boom")
    def boom():
        raise ValueError(f"DETAIL: Key (customer_name)=({customer}) already exists")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "Zoë" not in response.get_data(as_text=True)
    (record,) = [r for r in caplog.records if r.getMessage() == "unhandled error: ValueError"]
    assert record.exc_info is None and "def boom" not in record.traceback and "boom" in record.traceback
    assert all("Zoë" not in r.getMessage() and "Zoë" not in str(getattr(r, "traceback", ""))
               for r in caplog.records)
