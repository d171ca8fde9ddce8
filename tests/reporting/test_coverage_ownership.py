"""A branch token's uploads count in coverage for its own branch only: whatever the file is called, a Leeds
till cannot make Uppingham's cells look sent, failed or pending."""
from __future__ import annotations

import io

from services.common import task_names
from tests.reporting.conftest import ADMIN, get_json

DAY = "05-09-2021"
UPPINGHAM_ROW = b'05/09/2021 09:00,Uppingham,Ann Lee,"Regular Latte - 2.15",2.15,CASH,\n'
LEEDS_ROW = b'05/09/2021 09:00,Leeds,Ann Lee,"Regular Latte - 2.15",2.15,CASH,\n'


def _post_and_load(ingest, celery_app, headers, content: bytes, name: str) -> dict:
    posted = ingest.post("/v1/uploads", headers=headers, data={"file": (io.BytesIO(content), name)})
    assert posted.status_code == 202, posted.get_json()
    celery_app.tasks[task_names.PROCESS_UPLOAD].apply(args=[posted.get_json()["id"]])
    return ingest.get(f"/v1/uploads/{posted.get_json()['id']}", headers=headers).get_json()


def test_a_branch_token_cannot_change_another_branchs_coverage(reporting_app, settings, celery_app, branch_token):
    from services.ingest.app import create_app as create_ingest

    ingest = create_ingest(settings).test_client()
    leeds = {"Authorization": f"Bearer {branch_token('Leeds')}"}
    garbage = _post_and_load(ingest, celery_app, leeds, b"this,is,not,a,till,file\n",
                             f"uppingham_{DAY}_09-00-00.csv")
    other_branch = _post_and_load(ingest, celery_app, leeds, UPPINGHAM_ROW, f"uppingham_{DAY}_10-00-00.csv")
    assert (garbage["status"], other_branch["status"], other_branch["rows_rejected"]) == ("failed", "loaded", 1)

    grid = get_json(reporting_app.test_client(), "/v1/reports/coverage",
                    {"from": "2021-09-05", "to": "2021-09-05", "branch": ["Uppingham", "Leeds"]})
    cells = {b["branch"]: (b["status"], b["upload_ids"]) for b in grid["branches"]}
    assert cells["Uppingham"] == (["missing"], {})
    # The Leeds till did send files for that day (a failed one among them): they are Leeds's to see.
    assert cells["Leeds"] == (["failed"], {"2021-09-05": sorted([garbage["id"], other_branch["id"]])})


def test_admin_uploads_still_count_for_the_branches_of_their_rows_and_name(reporting_app, settings, celery_app):
    from services.ingest.app import create_app as create_ingest

    ingest = create_ingest(settings).test_client()
    by_rows = _post_and_load(ingest, celery_app, ADMIN, UPPINGHAM_ROW + LEEDS_ROW, f"backfill_{DAY}.csv")
    by_name = _post_and_load(ingest, celery_app, ADMIN, b"garbage,garbage\n", f"london_soho_{DAY}.csv")
    grid = get_json(reporting_app.test_client(), "/v1/reports/coverage",
                    {"from": "2021-09-05", "to": "2021-09-05", "branch": ["Uppingham", "Leeds", "London Soho"]})
    cells = {b["branch"]: (b["status"], b["upload_ids"]) for b in grid["branches"]}
    assert cells == {"Uppingham": (["loaded"], {"2021-09-05": [by_rows["id"]]}),
                     "Leeds": (["loaded"], {"2021-09-05": [by_rows["id"]]}),
                     "London Soho": (["failed"], {"2021-09-05": [by_name["id"]]})}
