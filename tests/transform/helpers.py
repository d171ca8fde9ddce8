from __future__ import annotations

import io

from sqlalchemy import text

from services.common import task_names


def post(client, content: bytes, headers, name: str = "branch.csv"):
    response = client.post("/v1/uploads", data={"file": (io.BytesIO(content), name)}, headers=headers)
    assert response.status_code < 500, response.get_data(as_text=True)
    return response


def load(client, run_task, content: bytes, headers, name: str = "branch.csv") -> dict:
    """Posts through ingest, runs the transform task in this process, returns the upload's status."""
    response = post(client, content, headers, name)
    assert response.status_code in (200, 202), response.get_json()
    upload_id = response.get_json()["id"]
    run_task(task_names.PROCESS_UPLOAD, upload_id)
    status = client.get(f"/v1/uploads/{upload_id}", headers=headers)
    assert status.status_code == 200
    return status.get_json()


def rejections(client, upload_id: int, headers) -> list[dict]:
    body = client.get(f"/v1/uploads/{upload_id}/rejections?page_size=500", headers=headers).get_json()
    return body["items"]


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()
