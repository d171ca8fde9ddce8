"""Exports equal the facts and carry no personal data; a schema-driven fuzz of the OpenAPI document
finds no 5xx (on the real warehouse, with a valid token, so requests reach the queries)."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import text

from tests.realdata import real_figures
from tests.reporting.conftest import ADMIN, ALL_TIME

RANGE = {"from": "2021-08-25", "to": "2021-08-27"}
TX_RANGE = """f.occurred_at >= '2021-08-25'::timestamp AT TIME ZONE 'Europe/London'
              AND f.occurred_at < '2021-08-28'::timestamp AT TIME ZONE 'Europe/London'"""


def facts(engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(text(sql)).one()


def test_transactions_csv_equals_the_facts_and_has_no_personal_data(reporting, real_warehouse):
    response = reporting.get("/v1/exports/transactions.csv", query_string=RANGE, headers=ADMIN)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    body = response.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    expected = facts(real_warehouse, f"SELECT count(*), sum(total) FROM warehouse.fact_transaction f WHERE {TX_RANGE}")
    assert (len(rows), sum(Decimal(r["total"]) for r in rows)) == expected
    assert "customer_key" not in rows[0] and {r["returning_customer"] for r in rows} <= {"True", "False", ""}
    _no_personal_data(body)


def test_items_parquet_equals_the_facts(reporting, real_warehouse):
    response = reporting.get("/v1/exports/items.parquet", query_string=RANGE, headers=ADMIN)
    assert response.status_code == 200
    table = pq.read_table(io.BytesIO(response.get_data()))
    expected = facts(real_warehouse, f"""
        SELECT count(*), sum(i.quantity), sum(i.quantity * i.unit_price) FROM warehouse.fact_transaction f
        JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id WHERE {TX_RANGE}""")
    quantities = table.column("quantity").to_pylist()
    revenue = sum(q * p for q, p in zip(quantities, table.column("unit_price").to_pylist()))
    assert (table.num_rows, sum(quantities), revenue) == expected
    assert str(table.schema.field("unit_price").type) == "decimal128(12, 2)"


def test_whole_export_as_parquet_totals_119138_75(reporting):
    response = reporting.get("/v1/exports/transactions.parquet", query_string=ALL_TIME, headers=ADMIN)
    table = pq.read_table(io.BytesIO(response.get_data()))
    assert table.num_rows == 19_448
    assert sum(table.column("total").to_pylist()) == Decimal("119138.75")
    _no_personal_data(table.to_pandas().to_csv())


def _no_personal_data(body: str) -> None:
    figures = real_figures()
    leaked = [name for name in figures.names if name and name in body]
    leaked += [card for card in figures.cards if len(card) >= 8 and card in body]
    assert not leaked, f"{len(leaked)} names or card numbers in an export"


@pytest.fixture(scope="module")
def reporting_wsgi(reporting):
    return reporting.application


@pytest.fixture(scope="module")
def api_schema(reporting_wsgi):
    return schemathesis.from_wsgi("/openapi.json", reporting_wsgi)


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_the_openapi_document_finds_no_5xx(case):
    response = case.call_wsgi(headers=ADMIN)
    case.validate_response(response, checks=(not_a_server_error,))
