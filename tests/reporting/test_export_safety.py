"""CSV exports open in a spreadsheet as data: every text cell that a spreadsheet would run as a formula is
neutralised (OWASP, CSV injection), whichever path the text came by (a branch file, the first spelling of a
branch, a product created through orders); numbers stay numbers. Also the exports' own small contract:
one charset in Content-Type, and the `product` filter applied as the reports apply it."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.common.spreadsheet import FORMULA_START
from tests.reporting.conftest import ADMIN, deliver_order, load_files
from tests.support import register_branches

FLAVOUR = "=cmd|' /C calc'!A0"
HYPERLINK = '=HYPERLINK("https://evil.example/","Click me")'
TEXT_COLUMNS = {"branch", "product", "size", "flavour", "payment_method", "card_network", "source"}
NUMBER_COLUMNS = {"transaction_id", "line_no", "quantity", "unit_price", "total"}


def _file(tmp_path: Path, name: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def hostile_warehouse(clean, settings, celery_app, tmp_path):
    """Hostile names through both paths: a branch file (a flavour and a product name starting with a formula
    character, the branch's first spelling starting with '-') and orders' live path (product names)."""
    from services.orders.app import create_app as create_orders_app

    register_branches(clean, ["Testville"])
    load_files(settings, celery_app, [_file(tmp_path, "testville_01-09-2025.csv", [
        f'01/09/2025 09:00,-Testville,Ann Lee,"Regular Flavoured latte - {FLAVOUR} - 2.55, Regular -Latte - 2.30",'
        '4.85,CASH,',
        '01/09/2025 09:05,Testville,Bo Li,"Large Latte - 2.45",2.45,CARD,4111111111111111',
    ])])
    deliver_order(create_orders_app(settings).test_client(), clean, celery_app, [
        ({"name": HYPERLINK, "size": None, "flavour": None, "price": "1.50"}, 1),
        ({"name": "@SUM(1+1)", "size": "Large", "flavour": "+44 extra", "price": "2.00"}, 2)], branch="Testville")
    return clean


def _export(client, kind: str, **params) -> list[dict]:
    today = dt.datetime.now(ZoneInfo("Europe/London")).date()
    response = client.get(f"/v1/exports/{kind}.csv", headers=ADMIN,
                          query_string={"from": "2025-09-01", "to": today.isoformat(), **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_every_text_cell_of_both_csv_exports_is_neutralised(hostile_warehouse, reporting_app):
    client = reporting_app.test_client()
    items, sales = _export(client, "items"), _export(client, "transactions")
    assert len(items) == 5 and len(sales) == 3
    for row in items + sales:
        for column, cell in row.items():
            if column in TEXT_COLUMNS:
                assert not cell.startswith(FORMULA_START), (column, cell)
            elif column in NUMBER_COLUMNS:
                Decimal(cell)                                   # a plain number, not a quoted text
    assert {r["branch"] for r in items} == {"'-Testville"}     # the first spelling seen, neutralised
    assert {r["branch"] for r in sales} == {"'-Testville"}
    assert {(r["product"], r["flavour"]) for r in items} == {
        ("Flavoured latte", "'" + FLAVOUR), ("'-Latte", ""), ("Latte", ""),   # the file path
        ("'" + HYPERLINK, ""), ("'@SUM(1+1)", "'+44 extra")}                  # the live path
    assert sorted(Decimal(r["unit_price"]) for r in items) == [Decimal(p) for p in
                                                                ("1.50", "2.00", "2.30", "2.45", "2.55")]


def test_csv_exports_name_one_charset(hostile_warehouse, reporting_app):
    response = reporting_app.test_client().get("/v1/exports/items.csv", headers=ADMIN,
                                               query_string={"from": "2025-09-01", "to": "2025-09-01"})
    response.get_data()              # read to the end: the stream holds a connection until then
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"


def test_exports_apply_the_product_filter_as_the_reports_do(hostile_warehouse, reporting_app):
    client = reporting_app.test_client()
    items = _export(client, "items", product="Latte")
    assert [(r["product"], r["size"], r["unit_price"]) for r in items] == [("Latte", "Large", "2.45")]
    sales = _export(client, "transactions", product="Latte")      # sales that contained it, as the reports count
    assert [r["total"] for r in sales] == ["2.45"]
    one = _export(client, "items", product="flavoured latte|regular|" + FLAVOUR.lower())
    assert [r["flavour"] for r in one] == ["'" + FLAVOUR]
    unknown = client.get("/v1/exports/items.csv", headers=ADMIN, query_string={"product": "Nothing"})
    assert unknown.status_code == 422 and unknown.get_json()["error"]["code"] == "unknown_product"
