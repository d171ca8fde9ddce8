"""The ingest contract: tokens, limits, repeats, listing and visibility."""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from services.ingest.app import create_app
from tests.support import ADMIN_TOKEN
from tests.transform.helpers import post

ROW = b'25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'


def test_tokens_are_required(client, clean, admin_headers):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = post(client, ROW, headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/v1/uploads").status_code == 401
    assert post(client, ROW, admin_headers).status_code == 202


def test_repeat_returns_the_existing_upload(client, clean, admin_headers):
    first = post(client, ROW, admin_headers, "a.csv")
    again = post(client, ROW, admin_headers, "renamed.csv")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert first.headers["Location"] == f"/v1/uploads/{first.get_json()['id']}"


def test_size_limit_is_413(settings, clean, admin_headers):
    small = create_app(settings.model_copy(update={"upload_max_bytes": 1000}))
    client = small.test_client()
    assert post(client, ROW * 10, admin_headers).status_code == 202
    response = post(client, ROW * 20, admin_headers)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    # A body far past the limit is refused by the content-length check before it is read.
    huge = client.post("/v1/uploads", data={"file": (io.BytesIO(ROW * 100_000), "big.csv")},
                       headers=admin_headers)
    assert huge.status_code == 413 and "error" in huge.get_json()


def test_multi_megabyte_file_is_accepted(client, clean, admin_headers):
    response = post(client, ROW * 60_000, admin_headers, "big.csv")   # ~4 MB, many parser buffers
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["size_bytes"] == len(ROW) * 60_000


def test_missing_field_and_wrong_content_type(client, clean, admin_headers):
    response = client.post("/v1/uploads", data={"other": (io.BytesIO(ROW), "a.csv")}, headers=admin_headers)
    assert response.status_code == 422 and response.get_json()["error"]["details"] == {
        "file": ["Missing data for required field."]}
    response = client.post("/v1/uploads", data=ROW, headers={**admin_headers, "Content-Type": "text/csv"})
    assert response.status_code == 415


def test_branch_tokens_see_only_their_uploads(client, clean, admin_headers, branch_token):
    leeds = {"Authorization": f"Bearer {branch_token('Leeds')}"}
    soho = {"Authorization": f"Bearer {branch_token('London Soho')}"}
    mine = post(client, ROW, leeds).get_json()
    assert mine["branch"] == "Leeds"
    assert client.get(f"/v1/uploads/{mine['id']}", headers=soho).status_code == 404
    assert client.get(f"/v1/uploads/{mine['id']}/rejections", headers=soho).status_code == 404
    assert client.get("/v1/uploads", headers=soho).get_json()["total"] == 0
    assert client.get("/v1/uploads", headers=leeds).get_json()["total"] == 1
    listing = client.get("/v1/uploads?branch=leeds&status=queued", headers=admin_headers).get_json()
    assert [u["id"] for u in listing["items"]] == [mine["id"]]


def test_rotated_token_stops_working(client, clean, branch_token):
    old = {"Authorization": f"Bearer {branch_token('Leeds')}"}
    assert client.get("/v1/uploads", headers=old).status_code == 200
    from click.testing import CliRunner

    from services.cli import main
    result = CliRunner().invoke(main, ["branch", "add", "Leeds", "--rotate"])
    assert result.exit_code == 0
    assert client.get("/v1/uploads", headers=old).status_code == 401
    assert client.get("/v1/uploads", headers={"Authorization": f"Bearer {result.output.strip()}"}).status_code == 200


def test_pagination_and_bad_query_parameters(client, clean, admin_headers):
    for n in range(5):
        post(client, ROW.replace(b"A B", f"Person {n}".encode()), admin_headers)
    page = client.get("/v1/uploads?page=2&page_size=2", headers=admin_headers).get_json()
    assert (page["total"], page["page"], page["page_size"], len(page["items"])) == (5, 2, 2, 2)
    assert page["items"][0]["id"] > page["items"][1]["id"]
    for bad in ("page=0", "page_size=100000", "status=lost", "page=x"):
        response = client.get(f"/v1/uploads?{bad}", headers=admin_headers)
        assert response.status_code == 422, bad
        assert response.get_json()["error"]["code"] == "validation_error"
    assert client.get("/v1/uploads/999999", headers=admin_headers).status_code == 404


def test_listing_selected_uploads_by_id(client, clean, admin_headers, branch_token):
    ids = [post(client, ROW.replace(b"A B", f"Person {n}".encode()), admin_headers).get_json()["id"]
           for n in range(4)]
    chosen = client.get(f"/v1/uploads?ids={ids[0]},{ids[2]},999999", headers=admin_headers).get_json()
    assert sorted(u["id"] for u in chosen["items"]) == [ids[0], ids[2]] and chosen["total"] == 2
    # A branch token still sees only its own uploads, whatever ids it asks for.
    leeds = {"Authorization": f"Bearer {branch_token('Leeds')}"}
    assert client.get(f"/v1/uploads?ids={ids[0]}", headers=leeds).get_json()["total"] == 0
    for bad in ("ids=", "ids=a,b", "ids=0", "ids=" + ",".join(["1"] * 501)):
        response = client.get(f"/v1/uploads?{bad}", headers=admin_headers)
        assert response.status_code == 422, bad
        assert response.get_json()["error"]["code"] == "validation_error"


def test_service_endpoints(client, clean):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["checks"] == {"database": "ok", "redis": "ok"}
    spec = client.get("/openapi.json").get_json()
    assert {"/v1/uploads", "/v1/uploads/{upload_id}", "/v1/uploads/{upload_id}/rejections"} <= set(spec["paths"])
    assert spec["paths"]["/v1/uploads"]["post"]["operationId"] == "uploads-create"
    assert b"cafeflow_http_requests_total" in client.get("/metrics").data
    docs = client.get("/docs").get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/nowhere").get_json()["error"]["code"] == "not_found"


def test_readyz_reports_an_unreachable_database(settings, clean):
    broken = create_app(settings.model_copy(update={
        "database_url": "postgresql+psycopg2://postgres@127.0.0.1:1/none"}))
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"]["details"]["database"].startswith("unreachable")


@pytest.mark.e2e
def test_identical_posts_racing_make_one_upload(stack):
    url = stack.start_ingest()
    body = ROW * 20_000   # large enough that the posts overlap in the server

    def send(_):
        return httpx.post(f"{url}/v1/uploads", files={"file": ("race.csv", body)},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 7 + [202], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
