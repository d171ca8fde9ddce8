"""Issue 16: an upload says what became of its rows in one word (`outcome`) and in words (`summary`), and a file
for another branch is rejected once, naming both branches, instead of once per row. Real branch files, posted
over ingest's HTTP API and loaded by the real transform task."""
from __future__ import annotations

import pytest

from services.common import task_names
from services.common.uploads import upload_outcome
from tests.support import REAL_FILES
from tests.transform.helpers import load, post, rejections

LEEDS_DAY = REAL_FILES / "leeds_25-08-2021_09-00-00.csv"
BIRMINGHAM_DAY = REAL_FILES / "birmingham_25-08-2021_09-00-00.csv"


@pytest.fixture
def leeds(branch_token):
    branch_token("Birmingham")
    return {"Authorization": f"Bearer {branch_token('Leeds')}"}


def test_a_clean_file_then_the_same_sales_again(client, run_task, leeds, admin_headers):
    first = load(client, run_task, LEEDS_DAY.read_bytes(), leeds, LEEDS_DAY.name)
    rows = first["rows_loaded"]
    assert rows > 300 and (first["status"], first["outcome"]) == ("loaded", "clean")
    assert first["summary"] == f"Every row taken (loaded {rows}, already had 0, rejected 0)."
    # The admin's post of the same bytes is another upload (another poster), and every sale was in already.
    again = load(client, run_task, LEEDS_DAY.read_bytes(), admin_headers, LEEDS_DAY.name)
    assert again["id"] != first["id"]
    assert (again["status"], again["rows_loaded"], again["outcome"]) == ("loaded", 0, "all_duplicate")
    assert again["summary"] == f"Nothing new: every sale was already in (loaded 0, already had {rows}, rejected 0)."
    listed = client.get("/v1/uploads", headers=admin_headers).get_json()["items"]
    assert [(u["id"], u["outcome"]) for u in listed] == [(again["id"], "all_duplicate"), (first["id"], "clean")]


def test_another_branchs_file_is_rejected_once_naming_both_branches(client, run_task, leeds, clean):
    upload = load(client, run_task, BIRMINGHAM_DAY.read_bytes(), leeds, BIRMINGHAM_DAY.name)
    rows = len(BIRMINGHAM_DAY.read_text().splitlines())
    assert (upload["status"], upload["outcome"]) == ("loaded", "all_rejected")
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (0, rows)
    [rejection] = rejections(client, upload["id"], leeds)      # once per file, not 254 times
    assert rejection["reason"] == f"this file is for Birmingham; this upload is for Leeds ({rows} rows not loaded)"
    assert (rejection["code"], rejection["line_no"], rejection["rows"]) == ("wrong_branch", 1, rows)
    assert "Henry Eckman" not in rejection["row"] and "5077991055223334" not in rejection["row"]
    assert upload["summary"] == f"Nothing loaded: every row was rejected (loaded 0, already had 0, rejected {rows})."
    with clean.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM warehouse.fact_transaction").scalar() == 0


def test_a_file_with_some_rows_for_another_branch_and_a_broken_row_is_partial(client, run_task, leeds):
    lines = LEEDS_DAY.read_text().splitlines()
    foreign = BIRMINGHAM_DAY.read_text().splitlines()[:3]
    broken = lines[5].replace(",CASH,", ",CHEQUE,").replace(",CARD,", ",CHEQUE,")
    content = "\n".join(lines[:5] + foreign + [broken] + lines[6:10]) + "\n"
    upload = load(client, run_task, content.encode(), leeds)
    assert (upload["outcome"], upload["rows_loaded"], upload["rows_rejected"]) == ("partial", 9, 4)
    assert upload["summary"] == "Some rows rejected (loaded 9, already had 0, rejected 4)."
    found = rejections(client, upload["id"], leeds)
    assert [(r["line_no"], r["code"], r["rows"]) for r in found] == [(6, "wrong_branch", 3), (9, "bad_payment", 1)]
    assert found[0]["reason"] == "this file is for Birmingham; this upload is for Leeds (3 rows not loaded)"
    assert sum(r["rows"] for r in found) == upload["rows_rejected"]


def test_a_branch_cell_that_is_not_a_registered_branch_is_never_quoted(client, run_task, leeds):
    """Names in reasons are the registered ones: a file's branch cell can hold anything (markup, a name)."""
    line = LEEDS_DAY.read_text().splitlines()[0]
    content = (line + "\n" + line.replace(",Leeds,", ",<img src=x onerror=alert(1)> Ann Smith,") + "\n").encode()
    upload = load(client, run_task, content, leeds)
    assert (upload["outcome"], upload["rows_loaded"], upload["rows_rejected"]) == ("partial", 1, 1)
    [rejection] = rejections(client, upload["id"], leeds)
    assert rejection["code"] == "unknown_branch"
    for shown in (rejection["reason"], rejection["row"], upload["summary"]):
        assert "img" not in shown and "Ann Smith" not in shown


def test_failed_and_waiting_uploads(client, run_task, leeds):
    waiting = post(client, b"time,branch\nnot,a sale\n", leeds).get_json()
    assert (waiting["status"], waiting["outcome"], waiting["summary"]) == ("queued", None, "Waiting to be loaded.")
    run_task(task_names.PROCESS_UPLOAD, waiting["id"])
    failed = client.get(waiting["status_url"], headers=leeds).get_json()
    assert (failed["status"], failed["outcome"]) == ("failed", "failed")
    assert failed["summary"] == f"Not loaded: {failed['error']}" and "sales row" in failed["error"]


@pytest.mark.parametrize(("counts", "expected"), [
    (("loaded", 5, 0, 0), "clean"), (("loaded", 5, 0, 2), "clean"), (("loaded", 5, 1, 0), "partial"),
    (("loaded", 0, 1, 2), "partial"), (("loaded", 0, 3, 0), "all_rejected"), (("loaded", 0, 0, 4), "all_duplicate"),
    (("retracted", 5, 1, 0), "partial"), (("failed", 0, 0, 0), "failed"), (("queued", 0, 0, 0), None),
    (("processing", 0, 0, 0), None), (("retracted", 0, 0, 0), None),
])
def test_every_outcome_from_the_counts(counts, expected):
    assert upload_outcome(*counts) == expected
