"""Text PostgreSQL cannot store (NUL, which neither text nor jsonb takes; a lone surrogate, which is not UTF-8)
rejects only the record that holds it, with a reason a branch manager can act on, wherever it is in the
record: an unknown field's name or value, nested or not, the branch, the customer. The rest of the file
loads; nothing unstorable reaches the warehouse, the upload's report or the rejected rows."""
from __future__ import annotations

import json

import pytest

from services.common import task_names
from tests.transform.helpers import load, post, rejections, scalar

SALE = {"timestamp": "2024-01-01T09:00:00", "branch": "Leeds", "customer": "Zoë Brontë",
        "items": [{"name": "Latte", "size": "Large", "price": "2.45", "quantity": 1}], "total": "2.45",
        "payment_method": "CARD"}
BROKEN = [
    '"no\\u0000te": "x"',                          # NUL in an unknown field's name
    '"n\\ud800te": "x"',                           # a lone surrogate in a name
    '"note": "\\udce9"',                           # ... in a value
    '"note": "a\\u0000b"',                         # NUL in a value
    '"meta": {"till": {"a\\u0000": 1}}',           # nested name
    '"meta": [{"x": ["\\ud83d"]}]',                # nested value in a list
]
REASON = "the record contains a NUL character or broken Unicode (a lone surrogate)"


def _line(minute: int, extra: str | None = None, **fields) -> str:
    text = json.dumps({**SALE, "timestamp": f"2024-01-01T09:{minute:02d}:00", **fields})
    return text[:-1] + ", " + extra + "}" if extra else text


def _stored_text_is_clean(engine) -> None:
    for sql in ("SELECT string_agg(extra::text, '') FROM warehouse.fact_transaction",
                "SELECT string_agg(extra_fields::text, '') FROM ingest.upload",
                "SELECT string_agg(masked_row || reason, '') FROM ingest.upload_rejection"):
        stored = scalar(engine, sql) or ""
        assert "\\u0000" not in stored and "\x00" not in stored and "\ufffd" not in stored, sql


@pytest.mark.parametrize("framing", ["ndjson", "array"])
def test_unstorable_text_anywhere_rejects_only_its_record(client, run_task, admin_headers, clean, framing):
    lines = [_line(0, '"till": 7')] + [_line(n + 1, extra) for n, extra in enumerate(BROKEN)]
    lines += [_line(20, None, branch="Leeds\u0000"), _line(21, None, customer="Zo\udce9"),
              _line(22, None, items=[{"name": "Lat\u0000te", "size": "Large", "price": "2.45"}]), _line(30)]
    body = "\n".join(lines) if framing == "ndjson" else "[\n" + ",\n".join(lines) + "\n]"
    upload = load(client, run_task, body.encode(), admin_headers, f"s.{framing}")
    assert upload["status"] == "loaded", upload["error"]
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (2, len(BROKEN) + 3)
    assert upload["extra_fields"]["fields"] == {"till": 1}
    found = rejections(client, upload["id"], admin_headers)
    assert {r["code"] for r in found} == {"bad_text"}
    assert all(r["reason"].startswith(REASON) for r in found)
    assert all("Leeds\u0000" not in r["row"] for r in found)
    _stored_text_is_clean(clean)


def test_a_batch_with_one_broken_record_loads_every_file(client, run_task, admin_headers, clean):
    """Small uploads are loaded together: one file's broken record must not fail, or even delay, the others."""
    ids = [post(client, _line(n, '"no\\u0000te": "x"' if n == 1 else None).encode(), admin_headers,
                f"{n}.ndjson").get_json()["id"] for n in range(3)]
    run_task(task_names.PROCESS_UPLOAD, ids[0])
    statuses = [client.get(f"/v1/uploads/{i}", headers=admin_headers).get_json() for i in ids]
    assert [(u["status"], u["rows_loaded"], u["rows_rejected"]) for u in statuses] == \
        [("loaded", 1, 0), ("loaded", 0, 1), ("loaded", 1, 0)]
    assert scalar(clean, "SELECT max(attempts) FROM ingest.upload") == 1        # one batch, no fallback


def test_a_nul_byte_near_the_top_of_a_csv_rejects_its_line_not_the_file(client, run_task, admin_headers, clean):
    content = ('25/08/2021 09:00,Leeds,A B,"Regular Lat\x00te - 2.30",2.30,CASH,\n'
               '25/08/2021 09:01,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n').encode()
    upload = load(client, run_task, content, admin_headers)
    assert (upload["status"], upload["rows_loaded"], upload["rows_rejected"]) == ("loaded", 1, 1)
    assert rejections(client, upload["id"], admin_headers)[0]["code"] == "unreadable_line"
    utf16 = "25/08/2021 09:00,Leeds,A B,x,2.30,CASH,\n".encode("utf-16-le")      # no BOM: NUL every other byte
    assert post(client, utf16, admin_headers).status_code == 415


def test_admin_commands_refuse_names_postgresql_cannot_store(clean):
    """argv bytes that are not UTF-8 reach Python as lone surrogates: a clear refusal, not a driver traceback."""
    from click.testing import CliRunner

    from services.cli import main

    for args in (["branch", "add", "Newtown\udcff"], ["token", "add", "bi\udcff", "--scope", "reporting"],
                 ["fields", "allow", "note\udcff"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code in (1, 2) and result.exception.__class__ is SystemExit, (args, result.exception)
        assert "printable" in result.output, result.output
    assert scalar(clean, "SELECT count(*) FROM ingest.api_token") == 0
