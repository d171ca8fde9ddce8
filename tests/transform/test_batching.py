"""Small queued uploads are loaded together in one transaction (a batch): each keeps its own counts,
rejections, repeat numbers and status, and one upload's failure never fails the others."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from services.common import task_names
from tests.transform.helpers import post, rejections, scalar

SALE_1 = '25/08/2021 09:00,Leeds,Thomas Douglas,"Regular Chai latte - 2.30",2.30,CASH,\n'
SALE_2 = '25/08/2021 09:01,Leeds,Angelia Mills,"Large Filter coffee - 1.80",1.80,CARD,7789883645846795\n'
SALE_3 = '25/08/2021 09:02,Leeds,Ann Lee,"Large Latte - 2.45",2.45,CASH,\n'
BAD_TOTAL = '25/08/2021 09:03,Leeds,Ben Hill,"Large Latte - 2.45",9.99,CASH,\n'
GARBAGE = b"hello, this is a shopping list\neggs, milk\n"


def status(client, upload_id: int, headers) -> dict:
    return client.get(f"/v1/uploads/{upload_id}", headers=headers).get_json()


def counts(upload: dict) -> tuple:
    return upload["status"], upload["rows_loaded"], upload["rows_rejected"], upload["rows_duplicate"]


def test_one_task_loads_the_queued_uploads_each_with_its_own_outcome(client, run_task, admin_headers, clean):
    first = post(client, (SALE_1 + SALE_2 + BAD_TOTAL).encode(), admin_headers).get_json()["id"]
    garbage = post(client, GARBAGE, admin_headers).get_json()["id"]
    overlapping = post(client, (SALE_1 + SALE_3).encode(), admin_headers).get_json()["id"]
    repeated = post(client, (SALE_3 + SALE_3).encode(), admin_headers).get_json()["id"]

    assert run_task(task_names.PROCESS_UPLOAD, first) == "loaded"

    assert counts(status(client, first, admin_headers)) == ("loaded", 2, 1, 0)
    failed = status(client, garbage, admin_headers)
    assert failed["status"] == "failed" and "no line of the file looks like a sales row" in failed["error"]
    # SALE_1 is in two uploads of the same batch: loaded once, a duplicate for the later upload.
    assert counts(status(client, overlapping, admin_headers)) == ("loaded", 1, 0, 1)
    # The same till line twice in one file is two sales; the batch's other SALE_3 is a third.
    assert counts(status(client, repeated, admin_headers)) == ("loaded", 1, 0, 1)
    assert [r["code"] for r in rejections(client, first, admin_headers)] == ["total_mismatch"]
    for other in (garbage, overlapping, repeated):
        assert rejections(client, other, admin_headers) == []

    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction") == 4
    assert scalar(clean, "SELECT sum(total) FROM warehouse.fact_transaction") == Decimal("9.00")
    assert scalar(clean, "SELECT sum(revenue) FROM warehouse.rollup_sales_hour") == Decimal("9.00")
    assert scalar(clean, "SELECT sum(revenue) FROM warehouse.rollup_product_hour") == Decimal("9.00")
    with clean.connect() as conn:
        by_upload = dict(conn.execute(text(
            "SELECT upload_id, count(*) FROM warehouse.fact_transaction GROUP BY upload_id")).all())
    assert by_upload == {first: 2, overlapping: 1, repeated: 1}
    # Their own messages arrive later and find nothing left to do.
    for other in (garbage, overlapping, repeated):
        assert run_task(task_names.PROCESS_UPLOAD, other) == "skipped"


def test_a_database_error_in_a_batch_fails_only_the_upload_that_caused_it(client, run_task, admin_headers, clean,
                                                                          redis_client, settings):
    first = post(client, SALE_1.encode(), admin_headers).get_json()["id"]
    poisoned = post(client, SALE_2.encode(), admin_headers).get_json()["id"]
    healthy = post(client, SALE_3.encode(), admin_headers).get_json()["id"]
    redis_client.delete(settings.transform_queue)
    # A real error raised by PostgreSQL for one upload's rows (not a mock): a trigger for this test only.
    with clean.begin() as conn:
        conn.execute(text(f"""
            CREATE FUNCTION warehouse.refuse_upload() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.upload_id = {poisoned} THEN RAISE EXCEPTION 'refused for the test'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_upload BEFORE INSERT ON warehouse.fact_transaction
                FOR EACH ROW EXECUTE FUNCTION warehouse.refuse_upload();"""))
    try:
        # The batch fails; the claimed upload is loaded alone and the others go back to the queue.
        assert run_task(task_names.PROCESS_UPLOAD, first) == "loaded"
        assert status(client, poisoned, admin_headers)["status"] == "queued"
        assert status(client, healthy, admin_headers)["status"] == "queued"
        assert redis_client.llen(settings.transform_queue) == 2
        # Each is then loaded alone: the poisoned one fails with a readable error, the other loads.
        assert run_task(task_names.PROCESS_UPLOAD, healthy) == "loaded"
        with pytest.raises(Exception) as raised:     # the task raises after recording the failure
            run_task(task_names.PROCESS_UPLOAD, poisoned)
        assert type(raised.value).__name__ == "LoadFailed"
        failed = status(client, poisoned, admin_headers)
        assert failed["status"] == "failed" and "internal error" in failed["error"]
    finally:
        with clean.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_upload ON warehouse.fact_transaction; "
                              "DROP FUNCTION warehouse.refuse_upload()"))
    assert counts(status(client, first, admin_headers)) == ("loaded", 1, 0, 0)
    assert counts(status(client, healthy, admin_headers)) == ("loaded", 1, 0, 0)
    assert scalar(clean, "SELECT sum(total) FROM warehouse.fact_transaction") == Decimal("4.75")
