"""JSON branch files: an array or newline-delimited objects; unknown fields are kept and reported."""
from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy import text

from tests.transform.helpers import load, rejections, scalar

SALE = {"timestamp": "2024-01-01T09:00:00", "branch": "Leeds", "customer": "Zoë Brontë",
        "items": [{"name": "Flavoured latte - Hazelnut", "size": "Large", "price": "2.85", "quantity": 2},
                  {"name": "Glass of milk", "size": None, "price": "0.70", "quantity": 1}],
        "total": "6.40", "payment_method": "CARD", "card_number": "4111111111111111"}


def test_json_array_loads_with_quantities(client, run_task, admin_headers, clean):
    second = {**SALE, "timestamp": "2024-01-01T09:05:00", "customer": "José Álvarez"}
    upload = load(client, run_task, json.dumps([SALE, second]).encode(), admin_headers, "sales.json")
    assert (upload["status"], upload["dialect"], upload["rows_loaded"]) == ("loaded", "json", 2)
    assert scalar(clean, "SELECT sum(quantity) FROM warehouse.fact_transaction_item") == 6
    assert scalar(clean, "SELECT sum(total) FROM warehouse.fact_transaction") == Decimal("12.80")


def test_ndjson_with_extra_fields_keeps_codes_and_withholds_personal_ones(client, run_task, admin_headers, clean):
    lines = [json.dumps({**SALE, "loyalty_tier": "gold", "customer_email": "zoe@example.com"}),
             json.dumps({**SALE, "timestamp": "2024-01-01T10:00:00", "till_id": 7}),
             '{"timestamp": "2024-01-01T11:00:00", "branch": "Leeds"}',
             '{"broken json']
    upload = load(client, run_task, "\n".join(lines).encode(), admin_headers, "sales.ndjson")
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (2, 2)
    assert upload["extra_fields"] == {"fields": {"loyalty_tier": 1, "customer_email": 1, "till_id": 1},
                                      "types": {"loyalty_tier": ["text"], "customer_email": ["text"],
                                                "till_id": ["number"]},
                                      "withheld": ["customer_email"]}
    with clean.connect() as conn:
        extras = [row[0] for row in conn.execute(text(
            "SELECT extra FROM warehouse.fact_transaction ORDER BY source_line"))]
    assert extras[0]["loyalty_tier"] == "gold"
    assert extras[0]["customer_email"] == "<text withheld>" and "zoe" not in str(extras)
    assert extras[1] == {"till_id": 7}
    codes = {r["line_no"]: r["code"] for r in rejections(client, upload["id"], admin_headers)}
    assert codes == {3: "missing_field", 4: "bad_json"}


def test_json_and_csv_of_the_same_sale_are_one_sale(client, run_task, admin_headers, clean):
    csv_row = ('01/01/2024 09:00,Leeds,Zoë Brontë,"Large Flavoured latte - Hazelnut - 2.85, '
               'Large Flavoured latte - Hazelnut - 2.85, Glass of milk - 0.70",6.40,CARD,4111111111111111\n')
    load(client, run_task, csv_row.encode(), admin_headers)
    upload = load(client, run_task, json.dumps([SALE]).encode(), admin_headers, "same.json")
    assert (upload["rows_loaded"], upload["rows_duplicate"]) == (0, 1)


def test_bad_quantity_is_rejected(client, run_task, admin_headers, clean):
    bad = {**SALE, "items": [{"name": "Latte", "size": "Large", "price": "2.45", "quantity": 0}], "total": "0"}
    upload = load(client, run_task, json.dumps([bad]).encode(), admin_headers, "bad.json")
    assert upload["status"] == "loaded" and upload["rows_rejected"] == 1
    assert rejections(client, upload["id"], admin_headers)[0]["code"] == "bad_quantity"
