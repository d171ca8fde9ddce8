"""Who may read, what the read-only role may not do, bad parameters, and the cache following the loads."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.common import task_names
from services.cli import main as cli
from services.common.auth import UserClaims, issue_user_token
from tests.realdata import real_files
from tests.reporting.conftest import ADMIN, load_files
from tests.support import SECRET_KEY

ENDPOINTS = ["/v1/reports/sales?group_by=branch", "/v1/reports/peak-hours", "/v1/reports/trend",
             "/v1/reports/customers", "/v1/reports/coverage", "/v1/exports/transactions.csv",
             "/v1/exports/items.parquet"]


@pytest.fixture
def leeds_loaded(reporting_app, settings, celery_app):
    leeds = [p for p in real_files() if p.name.startswith("leeds_")]
    load_files(settings, celery_app, leeds[:3])
    return reporting_app.test_client()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
@pytest.mark.parametrize("url", ENDPOINTS)
def test_no_valid_token_gets_401_and_no_data(leeds_loaded, url, headers):
    response = leeds_loaded.get(url, headers=headers)
    assert response.status_code == 401
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == "unauthorized"
    assert "Leeds" not in response.get_data(as_text=True)


def test_probes_need_no_token(leeds_loaded):
    for url in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert leeds_loaded.get(url).status_code == 200, url


def test_reporting_token_from_the_cli_reads_and_an_upload_token_does_not(leeds_loaded, branch_token):
    result = CliRunner().invoke(cli, ["token", "add", "analysts", "--scope", "reporting"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    ok = leeds_loaded.get(ENDPOINTS[0], headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.get_json()["rows"][0]["branch"] == "Leeds"
    upload_token = branch_token("Leeds")
    assert leeds_loaded.get(ENDPOINTS[0], headers={"Authorization": f"Bearer {upload_token}"}).status_code == 401


def _orders_user(name: str, role: str, branch: str | None = None) -> UserClaims:
    args = ["user", "add", name, "--role", role] + (["--branch", branch] if branch else [])
    result = CliRunner().invoke(cli, args, input="a long enough password\n")
    assert result.exit_code == 0, result.output
    user_id = int(result.output.rsplit("id", 1)[1])
    return UserClaims(user_id=user_id, username=name, role=role, branch=branch, token_version=1)


def test_orders_user_token_reads_and_a_staff_user_only_its_branch(leeds_loaded):
    manager = issue_user_token(SECRET_KEY, _orders_user("ana", "admin"))
    assert leeds_loaded.get(ENDPOINTS[0], headers={"Authorization": f"Bearer {manager}"}).status_code == 200
    staff = issue_user_token(SECRET_KEY, _orders_user("bo", "staff", "Chesterfield"))
    headers = {"Authorization": f"Bearer {staff}"}
    own = leeds_loaded.get("/v1/reports/sales?group_by=branch&from=2021-08-01&to=2021-08-31", headers=headers)
    assert own.status_code == 200 and own.get_json()["rows"] == []          # Chesterfield's files are not loaded
    assert leeds_loaded.get(ENDPOINTS[0] + "&branch=Leeds", headers=headers).status_code == 403
    forged = issue_user_token("another-secret-0123456789abcdef0123456789", UserClaims(1, "eve", "admin"))
    assert leeds_loaded.get(ENDPOINTS[0], headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_token_outlives_no_deactivation_demotion_or_move(leeds_loaded, clean):
    """Reporting reads the orders user's current row: a still-valid signature is not enough."""
    claims = _orders_user("cy", "admin")
    headers = {"Authorization": f"Bearer {issue_user_token(SECRET_KEY, claims)}"}
    leeds_only = ENDPOINTS[0] + "&branch=Leeds"
    assert leeds_loaded.get(leeds_only, headers=headers).status_code == 200
    with clean.begin() as conn:      # demoted to staff of another branch, as an admin would in orders
        conn.execute(text("UPDATE orders.app_user SET role = 'staff', branch = 'Chesterfield', "
                          "branch_key = 'chesterfield' WHERE id = :id"), {"id": claims.user_id})
    # The change bumped the user's token version (orders migration 0005): the old token is over, not demoted.
    assert leeds_loaded.get(leeds_only, headers=headers).status_code == 401
    moved = issue_user_token(SECRET_KEY, UserClaims(claims.user_id, "cy", "staff", "Chesterfield", token_version=2))
    assert leeds_loaded.get(leeds_only, headers={"Authorization": f"Bearer {moved}"}).status_code == 403
    with clean.begin() as conn:
        conn.execute(text("UPDATE orders.app_user SET active = false WHERE id = :id"), {"id": claims.user_id})
    assert leeds_loaded.get(ENDPOINTS[0], headers={"Authorization": f"Bearer {moved}"}).status_code == 401
    ghost = issue_user_token(SECRET_KEY, UserClaims(user_id=999_999, username="ghost", role="admin"))
    assert leeds_loaded.get(ENDPOINTS[0], headers={"Authorization": f"Bearer {ghost}"}).status_code == 401


def test_coverage_of_two_branches_without_sales_is_not_shared_in_the_cache(reporting_app, clean):
    from tests.support import register_branches

    register_branches(clean, ["Newtown", "Oldham"])
    client = reporting_app.test_client()
    answers = {}
    for branch in ("Newtown", "Oldham"):
        body = client.get("/v1/reports/coverage", query_string={"from": "2021-08-25", "to": "2021-08-25",
                                                                "branch": branch}, headers=ADMIN).get_json()
        answers[branch] = json.dumps(body)
    assert "Oldham" not in answers["Newtown"] and "Newtown" not in answers["Oldham"]
    assert "Oldham" in answers["Oldham"]


def test_the_service_engine_is_refused_an_insert(reporting_app):
    engine = reporting_app.extensions["cafeflow.db"].engine
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == "cafeflow_reporting"
        with pytest.raises(DBAPIError) as read_only:
            conn.execute(text("INSERT INTO warehouse.dim_branch (branch_key, name) VALUES ('x', 'X')"))
        assert read_only.value.orig.pgcode == "25006"        # read_only_sql_transaction
        conn.rollback()
        conn.execute(text("SET TRANSACTION READ WRITE"))
        with pytest.raises(DBAPIError) as no_privilege:
            conn.execute(text("INSERT INTO warehouse.dim_branch (branch_key, name) VALUES ('x', 'X')"))
        assert no_privilege.value.orig.pgcode == "42501"     # insufficient_privilege: the role itself may not
        conn.rollback()
        with pytest.raises(DBAPIError):
            conn.execute(text("SELECT count(*) FROM ingest.upload_chunk"))       # raw files are not readable


@pytest.mark.parametrize("query,code", [
    ("group_by=colour", "validation_error"),
    ("group_by=day&from=2021-09-01&to=2021-08-01", "invalid_range"),
    ("group_by=day&from=2021-13-01", "validation_error"),
    ("group_by=day&to=yesterday", "validation_error"),
    ("group_by=day&from=1999-12-31", "invalid_date"),
    ("group_by=day&branch=Atlantis", "unknown_branch"),
    ("group_by=day&product=Caviar", "unknown_product"),
    ("group_by=day&product=%00", "validation_error"),
    ("group_by=day&branch=Leeds%0A", "validation_error"),
    ("group_by=day&source=fax", "validation_error"),
    ("group_by=day&limit=0", "validation_error"),
])
def test_bad_parameters_are_422_with_the_json_error_shape(leeds_loaded, query, code):
    response = leeds_loaded.get(f"/v1/reports/sales?{query}", headers=ADMIN)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"] and "request_id" in error


def test_one_more_file_changes_the_next_answer(reporting_app, settings, celery_app):
    client = reporting_app.test_client()
    leeds = sorted(p for p in real_files() if p.name.startswith("leeds_"))
    load_files(settings, celery_app, leeds[:2])
    url = "/v1/reports/sales?group_by=branch&from=2021-01-01&to=2023-12-31"
    first = client.get(url, headers=ADMIN)
    again = client.get(url, headers=ADMIN)
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("miss", "hit")
    assert again.get_json() == first.get_json()
    before = first.get_json()["rows"][0]

    load_files(settings, celery_app, leeds[2:3])
    after = client.get(url, headers=ADMIN)
    assert after.headers["X-Cache"] == "miss"
    row = after.get_json()["rows"][0]
    assert row["transactions"] > before["transactions"]
    assert after.get_json()["warehouse_version"] == first.get_json()["warehouse_version"] + 1
    with reporting_app.extensions["cafeflow.db"].engine.connect() as conn:
        assert row["transactions"] == conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction")).scalar()


def test_answers_are_computed_when_redis_is_down(reporting_app, settings, celery_app):
    from services.reporting.cache import ReportCache

    load_files(settings, celery_app, [p for p in real_files() if p.name.startswith("leeds_")][:1])
    reporting_app.extensions["cafeflow.report_cache"] = ReportCache("redis://127.0.0.1:1/0", 60)
    response = reporting_app.test_client().get("/v1/reports/sales?group_by=branch", headers=ADMIN)
    assert response.status_code == 200 and response.get_json()["rows"][0]["branch"] == "Leeds"


def test_coverage_follows_failed_and_late_files(reporting_app, settings, celery_app):
    """A file that fails changes coverage without changing the warehouse version: the cache must see it."""
    import io

    from services.ingest.app import create_app as create_ingest

    client = reporting_app.test_client()
    leeds = sorted(p for p in real_files() if p.name.startswith("leeds_25-08-2021"))
    load_files(settings, celery_app, leeds)
    url = "/v1/reports/coverage?from=2021-08-25&to=2021-08-26&branch=Leeds"
    before = client.get(url, headers=ADMIN)
    assert before.get_json()["branches"][0]["status"] == ["loaded", "missing"]
    assert client.get(url, headers=ADMIN).headers["X-Cache"] == "hit"

    ingest = create_ingest(settings).test_client()
    posted = ingest.post("/v1/uploads", headers=ADMIN, data={
        "file": (io.BytesIO(b"this,is,not,a,till,file\n"), "leeds_26-08-2021_09-00-00.csv")})
    upload_id = posted.get_json()["id"]
    assert client.get(url, headers=ADMIN).get_json()["branches"][0]["status"] == ["loaded", "pending"]
    celery_app.tasks[task_names.PROCESS_UPLOAD].apply(args=[upload_id])
    after = client.get(url, headers=ADMIN)
    assert after.headers["X-Cache"] == "miss"
    leeds = after.get_json()["branches"][0]
    assert (leeds["status"], leeds["transactions"]) == (["loaded", "failed"], [leeds["transactions"][0], 0])
    assert leeds["upload_ids"]["2021-08-26"] == [upload_id] and leeds["transactions"][0] > 0
    assert after.get_json()["branches"][0]["missing_last_day"] is True


def test_coverage_finds_uploads_by_file_day_through_the_indexes(clean):
    """The coverage query's file-name expressions must match ingest migration 0002's index expressions
    exactly, or every uncached coverage request reads every upload ever posted."""
    from services.common.coverage import _UPLOADS

    with clean.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(conn.execute(text("EXPLAIN " + _UPLOADS),
                                      {"dmy": ["25-08-2021"], "iso": ["2021-08-25"]}).scalars())
    assert "upload_file_day_dmy" in plan and "upload_file_day_iso" in plan, plan
