"""Rejected rows as a branch manager sees them (GET /v1/uploads/<id>/rejections): the timestamp as it was
written (a time is not a phone number), and a CSV line a spreadsheet reads as data, never as a formula."""
from __future__ import annotations

import csv
import json

from tests.transform.helpers import load, rejections

SALE = {"timestamp": "2024-01-01T09:00:00", "branch": "Leeds", "customer": "Zoë Brontë",
        "items": [{"name": "Latte", "size": "Large", "price": "2.45", "quantity": 1}], "total": "2.45",
        "payment_method": "CARD"}


def test_rejected_rows_show_their_timestamp_as_written(client, run_task, admin_headers, clean):
    csv_rows = ('2021-08-25 09:00:01,Leeds,A B,"Regular Chai latte - 2.30",CHEQUE,2.30,None\n'
                '25/08/2021 10:12,Leeds,A B,"Regular Chai latte - 2.30",2.30,CHEQUE,\n'
                '0770-09-0012 345678,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n')   # a phone, not a time
    upload = load(client, run_task, csv_rows.encode(), admin_headers)
    rows = [r["row"] for r in rejections(client, upload["id"], admin_headers)]
    assert rows[0].startswith("2021-08-25 09:00:01,") and rows[1].startswith("25/08/2021 10:12,")
    assert "345678" not in rows[2] and "<number>" not in rows[0] + rows[1]
    record = json.dumps({**SALE, "timestamp": "2024-01-01 09:00:01", "payment_method": "CHEQUE"})
    upload = load(client, run_task, record.encode(), admin_headers, "j.ndjson")
    [shown] = [r["row"] for r in rejections(client, upload["id"], admin_headers)]
    assert json.loads(shown)["timestamp"] == "2024-01-01 09:00:01"


def test_rejected_csv_rows_are_a_csv_line_that_a_spreadsheet_reads_as_data(client, run_task, admin_headers, clean):
    content = ('25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'
               '25/08/2021 09:01,-Leeds,A B,"=1+1 - 2.30, Regular Latte - 2.15",9.99,CASH,\n').encode()
    upload = load(client, run_task, content, admin_headers)
    [shown] = [r["row"] for r in rejections(client, upload["id"], admin_headers)]
    cells = next(csv.reader([shown]))
    assert cells[:2] == ["25/08/2021 09:01", "'-Leeds"] and cells[3] == "'=1+1 - 2.30, Regular Latte - 2.15"
    assert len(cells) == 7
