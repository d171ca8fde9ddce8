"""Web requests run their SQL under a statement timeout (threaded workers cannot kill a stuck request)."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError


@pytest.mark.parametrize("service", ["ingest", "orders"])
def test_a_web_service_bounds_every_statement(settings, clean, service):
    import importlib

    create_app = importlib.import_module(f"services.{service}.app").create_app
    quick = settings.model_copy(update={"web_statement_timeout_ms": 200})
    database = create_app(quick).extensions["cafeflow.db"]
    with database.session() as session:
        assert session.execute(text("SHOW statement_timeout")).scalar() == "200ms"
        with pytest.raises(OperationalError, match="statement timeout"):
            session.execute(text("SELECT pg_sleep(2)"))
