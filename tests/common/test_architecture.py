"""Architecture rules that keep the services separable."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from services.common.migrate import HISTORIES, heads, upgrade_all
from services.common.settings import Settings
from tests.support import ROOT

SERVICES = ROOT / "services"
SERVICE_NAMES = sorted(p.name for p in SERVICES.iterdir()
                       if p.is_dir() and (p / "__init__.py").exists() and p.name not in ("common", "tools"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_there_are_services_to_check():
    assert {"ingest", "transform", "orders"} <= set(SERVICE_NAMES)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_no_service_imports_another(service):
    offenders = []
    for path in (SERVICES / service).rglob("*.py"):
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] not in (service, "common"):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders


def test_common_imports_no_service():
    for path in (SERVICES / "common").rglob("*.py"):
        for module in imported_modules(path):
            parts = module.split(".")
            assert not (parts[0] == "services" and len(parts) > 1 and parts[1] in SERVICE_NAMES), (path, module)


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.schema)
def test_each_migration_history_has_a_single_head(history):
    assert len(heads(history)) == 1


def test_migrations_are_idempotent_and_versioned_per_schema(engine, settings):
    upgrade_all(settings.database_url)
    with engine.connect() as conn:
        for history in HISTORIES:
            version = conn.execute(text(f"SELECT version_num FROM {history.schema}.alembic_version")).scalar()
            assert version == heads(history)[0]


def test_money_columns_are_numeric(engine):
    with engine.connect() as conn:
        floats = conn.execute(text("""
            SELECT table_schema || '.' || table_name || '.' || column_name FROM information_schema.columns
            WHERE table_schema IN ('ingest', 'warehouse', 'orders')
              AND data_type IN ('real', 'double precision')""")).all()
        naive = conn.execute(text("""
            SELECT table_schema || '.' || table_name || '.' || column_name FROM information_schema.columns
            WHERE table_schema IN ('ingest', 'warehouse', 'orders')
              AND data_type = 'timestamp without time zone'""")).all()
        prices = conn.execute(text("""
            SELECT table_name || '.' || column_name || ':' || data_type FROM information_schema.columns
            WHERE table_schema = 'orders' AND column_name IN ('price', 'unit_price', 'total')""")).scalars().all()
    assert sorted(prices) == ["customer_order.total:numeric", "order_item.unit_price:numeric", "product.price:numeric"]
    assert floats == [] and naive == []


def test_production_refuses_placeholder_secrets(monkeypatch):
    monkeypatch.setenv("CAFEFLOW_ENV", "production")
    monkeypatch.setenv("CAFEFLOW_SECRET_KEY", "changeme")
    with pytest.raises(ValidationError, match="CAFEFLOW_SECRET_KEY"):
        Settings(_env_file=None)
    monkeypatch.delenv("CAFEFLOW_SECRET_KEY")
    with pytest.raises(ValidationError, match="CAFEFLOW_SECRET_KEY"):
        Settings(_env_file=None)


@pytest.mark.parametrize("env", ["development", "test", "production"])
def test_the_hard_time_limit_must_exceed_the_soft_one_in_every_environment(monkeypatch, env):
    monkeypatch.setenv("CAFEFLOW_ENV", env)
    monkeypatch.setenv("TASK_SOFT_TIME_LIMIT", "600")
    monkeypatch.setenv("TASK_TIME_LIMIT", "600")
    with pytest.raises(ValidationError, match="TASK_TIME_LIMIT must be above TASK_SOFT_TIME_LIMIT"):
        Settings(_env_file=None)
    monkeypatch.setenv("TASK_TIME_LIMIT", "700")
    assert Settings(_env_file=None).task_time_limit == 700


def test_committed_reporting_openapi_spec_is_current(settings):
    from services.reporting.app import create_app

    committed = json.loads((ROOT / "docs" / "openapi" / "reporting.json").read_text())
    assert create_app(settings).test_client().get("/openapi.json").get_json() == committed, \
        "regenerate with: LOG_LEVEL=WARNING .venv/bin/cafeflow openapi reporting > docs/openapi/reporting.json"


def test_committed_openapi_spec_is_current(client):
    committed = json.loads((ROOT / "docs" / "openapi" / "ingest.json").read_text())
    assert client.get("/openapi.json").get_json() == committed, \
        "regenerate with: .venv/bin/cafeflow openapi ingest > docs/openapi/ingest.json"


def test_committed_orders_openapi_spec_is_current(settings, clean):
    from services.orders.app import create_app

    committed = json.loads((ROOT / "docs" / "openapi" / "orders.json").read_text())
    assert create_app(settings).test_client().get("/openapi.json").get_json() == committed, \
        "regenerate with: LOG_LEVEL=WARNING .venv/bin/cafeflow openapi orders > docs/openapi/orders.json"


def test_orders_openapi_documents_money_as_decimal_strings_and_the_error_shape():
    spec = json.loads((ROOT / "docs" / "openapi" / "orders.json").read_text())
    schemas = spec["components"]["schemas"]
    for schema, field in (("OrderPublic", "total"), ("ProductPublic", "price"), ("OrderItemPublic", "unit_price"),
                          ("ProductCreate", "price")):
        prop = schemas[schema]["properties"][field]
        assert prop["type"] == "string" and prop.get("format") == "decimal", (schema, field, prop)
    assert set(schemas["ErrorBody"]["properties"]) == {"code", "message", "details", "request_id"}
    change = spec["paths"]["/v1/orders/{order_id}/status"]["post"]
    assert any(p["name"] == "If-Match" and p["required"] for p in change["parameters"])
