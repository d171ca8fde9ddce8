"""One upload, one file: a multipart request with a second file, a second file field or any other field is
refused in the JSON error shape before anything is stored (the second file used to be dropped silently)."""
from __future__ import annotations

import io

from sqlalchemy import text

ROW = b'25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'
OTHER = b'25/08/2021 09:05,Leeds,C D,"Large Latte - 2.45",2.45,CASH,\n'


def _stored(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM ingest.upload")).scalar()


def test_two_files_in_one_request_are_refused_and_neither_is_stored(client, clean, admin_headers):
    response = client.post("/v1/uploads", headers=admin_headers, data={
        "file": [(io.BytesIO(ROW), "leeds_25-08-2021.csv"), (io.BytesIO(OTHER), "leeds_26-08-2021.csv")]})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "one_file_per_request" and "one file per request" in error["message"]
    assert error["details"] == {"file": ["2 files were sent; post each file in its own request"]}
    assert error["request_id"] and _stored(clean) == 0


def test_a_second_file_field_is_refused(client, clean, admin_headers):
    response = client.post("/v1/uploads", headers=admin_headers, data={
        "file": (io.BytesIO(ROW), "a.csv"), "file2": (io.BytesIO(OTHER), "b.csv")})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "one_file_per_request"
    assert _stored(clean) == 0


def test_other_fields_are_refused_not_ignored(client, clean, admin_headers):
    # ?mode= is a query parameter: a form field of that name would otherwise be ignored without a word.
    response = client.post("/v1/uploads", headers=admin_headers, data={
        "file": (io.BytesIO(ROW), "a.csv"), "mode": "replace", "note": "hi"})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "unexpected_field"
    assert error["details"] == {"mode": ["unexpected field"], "note": ["unexpected field"]}
    assert _stored(clean) == 0


def test_a_file_field_without_a_file_says_so(client, clean, admin_headers):
    response = client.post("/v1/uploads", headers=admin_headers, data={"file": "25/08/2021 09:00,Leeds"},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"file": ["send a file (a part with a filename), not text"]}


def test_one_file_alone_is_still_taken(client, clean, admin_headers):
    response = client.post("/v1/uploads", headers=admin_headers, data={"file": (io.BytesIO(ROW), "a.csv")})
    assert response.status_code == 202 and _stored(clean) == 1
