"""GET /v1/coverage on ingest (the branch portal's "which days are in"): the same grid as reporting's
/v1/reports/coverage (one definition, services/common/coverage.py), a branch seeing its own branch only and the
admin any; bad ranges and unknown branches answered in words."""
from __future__ import annotations

from tests.support import ADMIN_TOKEN, REAL_BRANCHES, REAL_FILES
from tests.transform.helpers import load, post

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WEEK = {"from": "2021-08-24", "to": "2021-08-31"}


def test_a_branch_sees_its_days_as_reporting_does(client, run_task, branch_token, settings):
    from services.reporting.app import create_app as create_reporting

    leeds = {"Authorization": f"Bearer {branch_token('Leeds')}"}
    branch_token("Chesterfield")
    for day in ("25", "27"):
        path = REAL_FILES / f"leeds_{day}-08-2021_09-00-00.csv"
        assert load(client, run_task, path.read_bytes(), leeds, path.name)["outcome"] == "clean"
    failed = post(client, b"time,branch\nnot,a sale\n", leeds, "leeds_28-08-2021_09-00-00.csv").get_json()
    run_task("transform.process_upload", failed["id"])
    post(client, (REAL_FILES / "leeds_29-08-2021_09-00-00.csv").read_bytes(), leeds, "leeds_29-08-2021.csv")  # waits

    mine = client.get("/v1/coverage", query_string=WEEK, headers=leeds)
    assert mine.status_code == 200, mine.get_json()
    [grid] = mine.get_json()["branches"]
    assert grid["branch"] == "Leeds"
    assert grid["status"] == ["missing", "loaded", "missing", "loaded", "failed", "pending", "missing", "missing"]
    assert grid["upload_ids"]["2021-08-28"] == [failed["id"]]
    reporting = create_reporting(settings).test_client().get(
        "/v1/reports/coverage", query_string={**WEEK, "branch": "Leeds"}, headers=ADMIN).get_json()
    assert reporting["branches"] == [grid] and reporting["days"] == mine.get_json()["days"]

    # Another branch's days are not a branch's to see; the admin sees any, or all.
    assert client.get("/v1/coverage", query_string={**WEEK, "branch": "Chesterfield"},
                      headers=leeds).status_code == 403
    every = client.get("/v1/coverage", query_string=WEEK, headers=ADMIN).get_json()
    assert {b["branch"] for b in every["branches"]} == set(REAL_BRANCHES)     # every registered branch
    one = client.get("/v1/coverage", query_string={**WEEK, "branch": "chesterfield"}, headers=ADMIN).get_json()
    assert [(b["branch"], b["days_missing"]) for b in one["branches"]] == [("Chesterfield", 8)]


def test_bad_ranges_and_unknown_branches_are_said_in_words(client, clean):
    answers = {
        "reversed": client.get("/v1/coverage", query_string={"from": "2021-08-31", "to": "2021-08-01"}, headers=ADMIN),
        "too long": client.get("/v1/coverage", query_string={"from": "2020-01-01", "to": "2021-08-01"}, headers=ADMIN),
        "not a date": client.get("/v1/coverage", query_string={"from": "yesterday"}, headers=ADMIN),
        "unknown": client.get("/v1/coverage", query_string={"branch": "<b>Nowhere</b>"}, headers=ADMIN),
        "no token": client.get("/v1/coverage"),
    }
    assert {name: r.status_code for name, r in answers.items()} == {
        "reversed": 422, "too long": 422, "not a date": 422, "unknown": 404, "no token": 401}
    assert answers["too long"].get_json()["error"]["message"] == "at most 366 days at a time"
    assert "Nowhere" not in answers["unknown"].get_data(as_text=True)
    # Default: the 28 days to yesterday.
    default = client.get("/v1/coverage", headers=ADMIN).get_json()
    assert len(default["days"]) == 28 and default["to"] == default["days"][-1]
