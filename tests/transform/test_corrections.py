"""Corrections (issue 13): a replacing file, a retracted upload, a refunded live sale and a forgotten customer
leave the warehouse, its reports and every derived table exactly as if rebuilt from the sales that stand.

The uploads go through ingest's HTTP API (Flask test client) and the transform tasks run in this process, as a
worker runs them; the reports come from the reporting app over the same database and cache."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from services.common import task_names
from tests.orders.conftest import PASSWORD, Menu, change_status, order_body
from tests.support import ADMIN_TOKEN, REAL_FILES

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LEEDS_DAY = "leeds_25-08-2021_09-00-00.csv"
DAY = {"from": "2021-08-25", "to": "2021-08-25"}


@pytest.fixture
def ingest(settings, clean):
    from services.ingest.app import create_app

    return create_app(settings).test_client()


@pytest.fixture
def reporting(settings, clean):
    from services.reporting.app import create_app

    return create_app(settings).test_client()


@pytest.fixture
def exact(engine):
    """Asserts every derived table equals its definition recomputed from the facts."""
    from services.transform.rollups import differences

    def check() -> None:
        with engine.connect() as conn:
            from sqlalchemy.orm import Session
            assert differences(Session(bind=conn)) == {}
    return check


def post(ingest, content: bytes, name: str, mode: str | None = None, headers=ADMIN) -> dict:
    query = f"?mode={mode}" if mode else ""
    response = ingest.post(f"/v1/uploads{query}", data={"file": (io.BytesIO(content), name)}, headers=headers)
    assert response.status_code in (200, 202), response.get_json()
    return response.get_json()


def load(ingest, run_task, content: bytes, name: str, mode: str | None = None, headers=ADMIN) -> dict:
    upload = post(ingest, content, name, mode, headers)
    run_task(task_names.PROCESS_UPLOAD, upload["id"])
    return ingest.get(f"/v1/uploads/{upload['id']}", headers=headers).get_json()


def retract(ingest, run_task, upload_id: int, reason: str = "posted by mistake", headers=ADMIN):
    response = ingest.delete(f"/v1/uploads/{upload_id}", json={"reason": reason}, headers=headers)
    if response.status_code == 202:
        run_task(task_names.RETRACT_UPLOAD, upload_id)
    return response


def day_report(reporting, branch: str = "Leeds") -> tuple[int, Decimal]:
    body = reporting.get("/v1/reports/sales", query_string={**DAY, "group_by": "day", "branch": branch},
                         headers=ADMIN)
    assert body.status_code == 200, body.get_json()
    rows = body.get_json()["rows"]
    return (rows[0]["transactions"], Decimal(rows[0]["revenue"])) if rows else (0, Decimal(0))


def facts(engine, where: str = "TRUE") -> list[tuple]:
    with engine.connect() as conn:
        return sorted(conn.execute(text(f"""
            SELECT f.occurred_at, f.total, f.payment_method FROM warehouse.fact_transaction f
            WHERE {where}""")).all())


def fact_ids(engine) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT natural_key, id FROM warehouse.fact_transaction")).all())


def totals(lines: list[bytes]) -> tuple[int, Decimal]:
    """Sales and revenue of dialect-A lines, read here apart from the code under test."""
    import csv
    rows = list(csv.reader(io.StringIO(b"".join(lines).decode())))
    return len(rows), sum((Decimal(r[4]) for r in rows), Decimal(0))


def leeds_day_and_correction() -> tuple[list[bytes], list[bytes]]:
    """The real Leeds day file, and the branch's corrected copy: the first sale (6.50) was voided and deleted,
    and the second was rung up wrong (a Large Filter coffee, not a Large Hot Chocolate)."""
    lines = (REAL_FILES / LEEDS_DAY).read_bytes().splitlines(keepends=True)
    assert lines[0].endswith(b",6.5,CASH,\n") and b'"Large Hot Chocolate - 1.70, Large Filter coffee - 1.80",3.5' \
        in lines[1]
    fixed = lines[1].replace(b'"Large Hot Chocolate - 1.70, Large Filter coffee - 1.80",3.5',
                             b'"Large Filter coffee - 1.80, Large Filter coffee - 1.80",3.6')
    return lines, [fixed] + lines[2:]


def test_a_corrected_day_file_with_mode_replace_leaves_exactly_its_sales(ingest, reporting, run_task, engine,
                                                                        exact):
    original, corrected = leeds_day_and_correction()
    first = load(ingest, run_task, b"".join(original), LEEDS_DAY)
    assert (first["status"], first["mode"], first["rows_loaded"]) == ("loaded", "append", 382)
    assert day_report(reporting) == totals(original) == (382, Decimal("2038.90"))
    before = fact_ids(engine)

    second = load(ingest, run_task, b"".join(corrected), LEEDS_DAY, mode="replace")
    assert second["id"] != first["id"] and second["mode"] == "replace"
    assert (second["status"], second["rows_loaded"], second["rows_duplicate"], second["rows_retracted"]) == \
        ("loaded", 1, 380, 2)
    # The warehouse and the reports hold exactly the corrected file: 381 sales, 6.50 - 0.10 less.
    assert day_report(reporting) == totals(corrected) == (381, Decimal("2038.90") - Decimal("6.40"))
    assert len(facts(engine)) == 381
    after = fact_ids(engine)
    shared = set(before) & set(after)
    assert len(shared) == 380 and all(before[k] == after[k] for k in shared)     # same ids: no churn for BI
    exact()
    # The first upload stays loaded (it is history), but no longer claims the replaced day.
    assert ingest.get(f"/v1/uploads/{first['id']}", headers=ADMIN).get_json()["status"] == "loaded"
    with engine.connect() as conn:
        log = conn.execute(text("SELECT kind, upload_id, sales_removed FROM warehouse.correction_log")).all()
    assert log == [("replace", second["id"], 2)]


def test_the_same_correction_appended_adds_and_never_removes(ingest, reporting, run_task, engine, exact):
    """append (the default) is a union: the corrected sale is added, the voided one stays (documented)."""
    original, corrected = leeds_day_and_correction()
    load(ingest, run_task, b"".join(original), LEEDS_DAY)
    again = load(ingest, run_task, b"".join(corrected), LEEDS_DAY)
    assert (again["mode"], again["rows_loaded"], again["rows_duplicate"], again["rows_retracted"]) == \
        ("append", 1, 380, 0)
    assert day_report(reporting) == (383, Decimal("2038.90") + Decimal("3.60"))
    exact()


def test_replacing_covers_only_the_branch_days_in_the_file(ingest, reporting, run_task, engine, exact):
    leeds = (REAL_FILES / LEEDS_DAY).read_bytes()
    next_day = (REAL_FILES / "leeds_26-08-2021_09-00-00.csv").read_bytes()
    other = (REAL_FILES / "chesterfield_25-08-2021_09-00-00.csv").read_bytes()
    for content, name in ((leeds, LEEDS_DAY), (next_day, "leeds_26.csv"), (other, "chesterfield_25.csv")):
        load(ingest, run_task, content, name)
    counts = {branch: day_report(reporting, branch) for branch in ("Leeds", "Chesterfield")}
    kept = facts(engine)
    # A replacement of Leeds' 25th with only its first ten sales.
    lines = leeds.splitlines(keepends=True)
    replaced = load(ingest, run_task, b"".join(lines[:10]), "leeds_25_fixed.csv", mode="replace")
    assert (replaced["rows_loaded"], replaced["rows_duplicate"], replaced["rows_retracted"]) == (0, 10, 372)
    assert day_report(reporting, "Leeds") == totals(lines[:10])
    assert day_report(reporting, "Chesterfield") == counts["Chesterfield"]
    assert len(facts(engine)) == len(kept) - 372
    next_day_report = reporting.get("/v1/reports/sales", query_string={
        "from": "2021-08-26", "to": "2021-08-26", "group_by": "day", "branch": "Leeds"}, headers=ADMIN)
    assert next_day_report.get_json()["rows"][0]["transactions"] == len(next_day.splitlines())
    exact()


def test_retracting_keeps_sales_another_standing_upload_contains(ingest, reporting, run_task, engine, exact):
    lines = (REAL_FILES / LEEDS_DAY).read_bytes().splitlines(keepends=True)
    whole = load(ingest, run_task, b"".join(lines), LEEDS_DAY)
    part = load(ingest, run_task, b"".join(lines[:100]), "leeds_morning.csv")
    assert (part["rows_loaded"], part["rows_duplicate"]) == (0, 100)

    response = retract(ingest, run_task, whole["id"])
    assert response.status_code == 202
    retracted = ingest.get(f"/v1/uploads/{whole['id']}", headers=ADMIN).get_json()
    assert (retracted["status"], retracted["rows_retracted"]) == ("retracted", 282)
    assert retracted["retraction"]["requested_by"] == "admin"
    assert retracted["retraction"]["reason"] == "posted by mistake" and retracted["retraction"]["retracted_at"]
    assert day_report(reporting) == totals(lines[:100])
    exact()

    # Repeating is a no-op; the audit trail lists it.
    assert retract(ingest, run_task, whole["id"]).status_code == 200
    listed = ingest.get("/v1/uploads?status=retracted", headers=ADMIN).get_json()
    assert [u["id"] for u in listed["items"]] == [whole["id"]]

    retract(ingest, run_task, part["id"], reason="duplicate of the day file")
    assert day_report(reporting) == (0, Decimal(0))
    assert facts(engine) == []
    with engine.connect() as conn:
        leftovers = {table: conn.execute(text(f"SELECT count(*) FROM warehouse.{table}")).scalar()
                     for table in ("rollup_sales_hour", "rollup_branch_day", "rollup_product_day_chain",
                                   "customer_first_seen", "customer_period", "customer_period_branch",
                                   "upload_sale")}
        log = conn.execute(text("SELECT kind, upload_id, sales_removed FROM warehouse.correction_log "
                                "ORDER BY id")).all()
    assert set(leftovers.values()) == {0}, leftovers
    assert log == [("retract", whole["id"], 282), ("retract", part["id"], 100)]
    exact()


def test_a_retracted_file_posted_again_is_a_new_upload_that_loads_again(ingest, run_task, engine, exact):
    content = (REAL_FILES / LEEDS_DAY).read_bytes()
    first = load(ingest, run_task, content, LEEDS_DAY)
    retract(ingest, run_task, first["id"])
    assert facts(engine) == []
    again = load(ingest, run_task, content, LEEDS_DAY)
    assert again["id"] != first["id"] and (again["status"], again["rows_loaded"]) == ("loaded", 382)
    assert ingest.get(f"/v1/uploads/{first['id']}", headers=ADMIN).get_json()["status"] == "retracted"
    # Its own re-post is a repeat again (200, the same upload).
    repeat = ingest.post("/v1/uploads", data={"file": (io.BytesIO(content), LEEDS_DAY)}, headers=ADMIN)
    assert (repeat.status_code, repeat.get_json()["id"]) == (200, again["id"])
    exact()


def test_retraction_rules_and_errors(ingest, run_task, branch_token, engine):
    leeds = {"Authorization": f"Bearer {branch_token('Leeds')}"}
    birmingham = {"Authorization": f"Bearer {branch_token('Birmingham')}"}
    upload = load(ingest, run_task, (REAL_FILES / LEEDS_DAY).read_bytes(), LEEDS_DAY, headers=leeds)
    assert upload["rows_loaded"] == 382
    # Another branch cannot see it, so cannot retract it; a reason is required.
    assert ingest.delete(f"/v1/uploads/{upload['id']}", json={"reason": "x"}, headers=birmingham).status_code == 404
    missing = ingest.delete(f"/v1/uploads/{upload['id']}", headers=leeds)
    assert missing.status_code == 422 and missing.get_json()["error"]["details"] == {
        "reason": ["Missing data for required field."]}
    assert ingest.delete(f"/v1/uploads/{upload['id']}", json={"reason": "a\x00b"}, headers=leeds).status_code == 422
    assert ingest.delete("/v1/uploads/999999", json={"reason": "x"}, headers=ADMIN).status_code == 404
    assert ingest.delete(f"/v1/uploads/{upload['id']}", json={"reason": "x"}).status_code == 401
    # The posting branch may; the reason also works as a query parameter.
    response = ingest.delete(f"/v1/uploads/{upload['id']}?reason=wrong%20day", headers=leeds)
    assert response.status_code == 202 and response.get_json()["retraction"]["reason"] == "wrong day"
    run_task(task_names.RETRACT_UPLOAD, upload["id"])
    assert facts(engine) == []
    # retry refuses a retracted upload
    from services.cli import main
    result = CliRunner().invoke(main, ["uploads", "retry", str(upload["id"])])
    assert result.exit_code == 1 and "retracted" in result.output


def test_retracting_a_queued_upload_means_it_never_loads(ingest, run_task, engine):
    upload = post(ingest, (REAL_FILES / LEEDS_DAY).read_bytes(), LEEDS_DAY)
    assert retract(ingest, run_task, upload["id"]).status_code == 202
    assert run_task(task_names.PROCESS_UPLOAD, upload["id"]) == "skipped"
    body = ingest.get(f"/v1/uploads/{upload['id']}", headers=ADMIN).get_json()
    assert (body["status"], body["rows_loaded"], body["rows_retracted"]) == ("retracted", 0, 0)
    assert facts(engine) == []


def test_cli_retract_and_warehouse_check(ingest, run_task, engine):
    from services.cli import main

    lines = (REAL_FILES / LEEDS_DAY).read_bytes().splitlines(keepends=True)
    a = load(ingest, run_task, b"".join(lines[:200]), "a.csv")
    b = load(ingest, run_task, b"".join(lines[150:]), "b.csv")
    result = CliRunner().invoke(main, ["uploads", "retract", str(a["id"]), "--reason", "overlapping export"])
    assert result.exit_code == 0 and f"upload {a['id']}: retracted, 150 sales taken out" in result.output
    again = CliRunner().invoke(main, ["uploads", "retract", str(a["id"]), "--reason", "overlapping export"])
    assert again.exit_code == 0 and "already retracted" in again.output
    assert len(facts(engine)) == len(lines) - 150
    assert ingest.get(f"/v1/uploads/{b['id']}", headers=ADMIN).get_json()["status"] == "loaded"

    check = CliRunner().invoke(main, ["warehouse", "check"])
    assert check.exit_code == 0 and "rollup_sales_day: exact" in check.output, check.output
    # A derived table that drifts from its definition is found.
    with engine.begin() as conn:
        conn.execute(text("UPDATE warehouse.rollup_product_day SET quantity = quantity + 1 "
                          "WHERE ctid = (SELECT min(ctid) FROM warehouse.rollup_product_day)"))
        conn.execute(text("DELETE FROM warehouse.customer_period WHERE ctid = "
                          "(SELECT min(ctid) FROM warehouse.customer_period)"))
    check = CliRunner().invoke(main, ["warehouse", "check"])
    assert check.exit_code == 1
    assert "rollup_product_day: 2 rows differ" in check.output and "customer_period: 1 rows differ" in check.output


# --- live sales: refunds -------------------------------------------------------------------------
@pytest.fixture
def orders(settings, clean):
    from services.orders.app import create_app

    return create_app(settings).test_client()


def _menu(orders) -> Menu:
    def make(path, body):
        response = orders.post(path, json=body, headers=ADMIN)
        assert response.status_code == 201, response.get_json()
        return response.get_json()
    latte = make("/v1/products", {"name": "Latte", "size": "Regular", "flavour": None, "price": "2.15"})
    courier = make("/v1/couriers", {"name": "Cora", "phone": "07700900001", "branch": "Leeds"})
    return Menu(latte, latte, latte, courier, courier)


def _delivered_order(orders, menu: Menu, customer: str = "Ada Lovelace") -> int:
    created = orders.post("/v1/orders", json={**order_body(menu, courier_id=menu.leeds_courier["id"], items=[
        {"product_id": menu.latte["id"], "quantity": 3}]), "customer_name": customer}, headers=ADMIN)
    assert created.status_code == 201, created.get_json()
    order = created.get_json()
    for status in ("out_for_delivery", "delivered"):
        assert change_status(orders, ADMIN, order["id"], status).status_code == 200
    return order["id"]


def _outbox(engine, order_id: int, kind: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT id FROM orders.outbox WHERE order_id = :o AND kind = :k"),
                            {"o": order_id, "k": kind}).scalar_one()


def _live_report(reporting) -> tuple[int, Decimal]:
    rows = reporting.get("/v1/reports/sales", query_string={"group_by": "branch", "source": "live"},
                         headers=ADMIN).get_json()["rows"]
    return (rows[0]["transactions"], Decimal(rows[0]["revenue"])) if rows else (0, Decimal(0))


def test_a_refunded_delivery_leaves_the_warehouse_exactly_once(orders, reporting, run_task, engine, exact):
    menu = _menu(orders)
    kept = _delivered_order(orders, menu, "Grace Hopper")
    refunded = _delivered_order(orders, menu)
    for order_id in (kept, refunded):
        assert run_task(task_names.LOAD_LIVE_ORDER, _outbox(engine, order_id, "delivery")) == "loaded"
    assert _live_report(reporting) == (2, Decimal("12.90"))

    order = orders.get(f"/v1/orders/{refunded}", headers=ADMIN).get_json()
    assert order["allowed_next"] == ["refunded"]
    created = orders.post("/v1/users", json={"username": "sam", "password": PASSWORD, "role": "staff", "branch": None},
                          headers=ADMIN)
    assert created.status_code == 201, created.get_json()
    token = orders.post("/v1/auth/token", json={"username": "sam", "password": PASSWORD}).get_json()["access_token"]
    staff = {"Authorization": f"Bearer {token}"}
    denied = orders.post(f"/v1/orders/{refunded}/status", json={"status": "refunded", "reason": "cold"},
                         headers={**staff, "If-Match": "*"})
    assert denied.status_code == 403
    no_reason = orders.post(f"/v1/orders/{refunded}/status", json={"status": "refunded"},
                            headers={**ADMIN, "If-Match": "*"})
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["error"]["details"]
    done = orders.post(f"/v1/orders/{refunded}/status", json={"status": "refunded", "reason": "arrived cold"},
                       headers={**ADMIN, "If-Match": "*"})
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["status"] == "refunded" and body["allowed_next"] == []
    assert body["history"][-1]["reason"] == "arrived cold" and body["history"][-1]["to_status"] == "refunded"

    refund = _outbox(engine, refunded, "refund")
    assert run_task(task_names.LOAD_LIVE_ORDER, refund) == "refunded"
    assert run_task(task_names.LOAD_LIVE_ORDER, refund) == "duplicate"          # a resend is a no-op
    assert _live_report(reporting) == (1, Decimal("6.45"))
    exact()
    with engine.connect() as conn:
        log = conn.execute(text("SELECT kind, order_id, sales_removed, actor FROM warehouse.correction_log")).all()
    assert log == [("refund", refunded, 1, "admin")]


def test_a_refund_handled_before_its_delivery_keeps_the_sale_out(orders, reporting, run_task, engine, exact):
    menu = _menu(orders)
    order_id = _delivered_order(orders, menu)
    orders.post(f"/v1/orders/{order_id}/status", json={"status": "refunded", "reason": "never arrived"},
                headers={**ADMIN, "If-Match": "*"})
    # The delivery's message was lost; the refund's arrives first.
    assert run_task(task_names.LOAD_LIVE_ORDER, _outbox(engine, order_id, "refund")) == "duplicate"
    assert run_task(task_names.LOAD_LIVE_ORDER, _outbox(engine, order_id, "delivery")) == "duplicate"
    assert _live_report(reporting) == (0, Decimal(0))
    assert facts(engine) == []
    exact()


# --- forgetting a customer -----------------------------------------------------------------------
def test_forgetting_a_customer_unlinks_every_sale_and_keeps_the_figures(ingest, orders, reporting, run_task, engine,
                                                                        exact, caplog):
    from services.cli import main
    from services.common.live_orders import customer_pseudonym

    content = (REAL_FILES / LEEDS_DAY).read_bytes()
    load(ingest, run_task, content, LEEDS_DAY)
    menu = _menu(orders)
    # A customer who bought at the till that day also ordered live: one returning customer.
    order_id = _delivered_order(orders, menu, "thomas douglas")
    run_task(task_names.LOAD_LIVE_ORDER, _outbox(engine, order_id, "delivery"))
    from tests.support import SECRET_KEY
    key = customer_pseudonym(SECRET_KEY, "Thomas Douglas")

    def customers() -> dict:
        body = reporting.get("/v1/reports/customers", query_string={"granularity": "month"}, headers=ADMIN)
        return {p["period_start"]: (p["customers"], p["new_customers"]) for p in body.get_json()["series"]}

    def with_key() -> int:
        with engine.connect() as conn:
            return conn.execute(text("""
                SELECT (SELECT count(*) FROM warehouse.fact_transaction WHERE customer_key = CAST(:k AS uuid))
                     + (SELECT count(*) FROM warehouse.customer_first_seen WHERE customer_key = CAST(:k AS uuid))
                     + (SELECT count(*) FROM warehouse.customer_period WHERE customer_key = CAST(:k AS uuid))
                     + (SELECT count(*) FROM warehouse.customer_period_branch WHERE customer_key = CAST(:k AS uuid))
                     + (SELECT count(*) FROM orders.outbox WHERE payload->>'customer_key' = :k)"""),
                {"k": key}).scalar()

    before_customers, before_sales = customers(), day_report(reporting)
    assert with_key() > 3
    result = CliRunner().invoke(main, ["customers", "forget"], input="  THOMAS   douglas \n")
    assert result.exit_code == 0, result.output
    assert "forgotten: 2 sales" in result.output and "homas" not in result.output.lower().replace(
        "forgotten", "")
    assert with_key() == 0
    assert day_report(reporting) == before_sales                              # the sales stay
    after_customers = customers()
    assert {m: (c - 1, n - 1) for m, (c, n) in before_customers.items() if m.startswith("2021-08")} == \
        {m: v for m, v in after_customers.items() if m.startswith("2021-08")}
    with engine.connect() as conn:
        log = conn.execute(text("SELECT kind, sales_changed FROM warehouse.correction_log")).all()
        audit = conn.execute(text("SELECT row_to_json(c)::text FROM warehouse.correction_log c")).scalar()
    assert log == [("forget", 2)]
    assert key not in audit and "thomas" not in audit.lower()
    assert "homas" not in caplog.text
    exact()
    # Nothing left to forget: said so, and still audited.
    again = CliRunner().invoke(main, ["customers", "forget"], input="Thomas Douglas\n")
    assert again.exit_code == 0 and "no sale" in again.output


def test_a_branch_user_retracts_its_own_branchs_uploads(ingest, orders, run_task, engine):
    def user(name: str, role: str, branch: str | None) -> dict:
        created = orders.post("/v1/users", json={"username": name, "password": PASSWORD, "role": role,
                                                 "branch": branch}, headers=ADMIN)
        assert created.status_code == 201, created.get_json()
        token = orders.post("/v1/auth/token", json={"username": name, "password": PASSWORD})
        return {"Authorization": f"Bearer {token.get_json()['access_token']}"}

    leeds, birmingham, floating = user("lee", "staff", "Leeds"), user("bea", "staff", "Birmingham"), \
        user("flo", "staff", None)
    upload = load(ingest, run_task, (REAL_FILES / LEEDS_DAY).read_bytes(), LEEDS_DAY, headers=leeds)
    assert (upload["status"], upload["rows_loaded"], upload["branch"]) == ("loaded", 382, "Leeds")
    assert ingest.delete(f"/v1/uploads/{upload['id']}", json={"reason": "x"}, headers=birmingham).status_code == 404
    assert ingest.delete(f"/v1/uploads/{upload['id']}", json={"reason": "x"}, headers=floating).status_code == 403
    response = retract(ingest, run_task, upload["id"], headers=leeds)
    assert response.status_code == 202 and response.get_json()["retraction"]["requested_by"] == "user:lee"
    assert facts(engine) == []
    # Signing out ends the token here too.
    assert orders.post("/v1/auth/logout", headers=leeds).status_code in (200, 204)
    assert ingest.get(f"/v1/uploads/{upload['id']}", headers=leeds).status_code == 401


def test_a_replacing_file_with_a_rejected_row_replaces_nothing_and_shows_the_row(ingest, run_task, engine, exact):
    lines = (REAL_FILES / LEEDS_DAY).read_bytes().splitlines(keepends=True)
    original = load(ingest, run_task, b"".join(lines), LEEDS_DAY)
    before = facts(engine)
    # The corrected copy has a typo in one total: applied, the replacement would take that sale away.
    broken = lines[5].rsplit(b",", 3)
    corrected = lines[:5] + [broken[0] + b",3.5O," + b",".join(broken[2:])] + lines[6:]
    upload = load(ingest, run_task, b"".join(corrected), LEEDS_DAY, mode="replace")
    assert upload["status"] == "failed"
    assert "nothing was replaced: 1 of the file's rows were rejected" in upload["error"]
    assert facts(engine) == before and original["rows_loaded"] == len(before)
    rejections = ingest.get(upload["rejections_url"], headers=ADMIN).get_json()
    assert [r["line_no"] for r in rejections["items"]] == [6], rejections
    exact()


def test_retry_never_replays_a_loaded_upload(ingest, run_task, engine):
    from services.cli import main

    lines = (REAL_FILES / LEEDS_DAY).read_bytes().splitlines(keepends=True)
    replacing = load(ingest, run_task, b"".join(lines[:100]), "fix.csv", mode="replace")
    later = load(ingest, run_task, b"".join(lines[100:]), "late.csv")
    assert (replacing["status"], later["status"]) == ("loaded", "loaded")
    # Replayed, the replacement would take away the sales posted after it.
    result = CliRunner().invoke(main, ["uploads", "retry", str(replacing["id"])])
    assert result.exit_code == 1 and "loaded already" in result.output
    assert len(facts(engine)) == len(lines)
    assert CliRunner().invoke(main, ["uploads", "retry", "--status", "loaded"]).exit_code == 2
