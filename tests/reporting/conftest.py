"""Reporting fixtures: the 65 real files loaded once per module through the real path (ingest's
/v1/uploads, then the transform task in this process), and a reporting app over them."""
from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import pytest

from sqlalchemy import text

from services.common import task_names
from tests.realdata import real_files
from tests.support import ADMIN_TOKEN, Stack, reset_state

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Wide enough for every real file (2021-02-23 .. 2023-05-09), within REPORTING_MAX_RANGE_DAYS.
ALL_TIME = {"from": "2021-02-01", "to": "2023-05-31"}


def load_files(settings, celery_app, paths: list[Path]) -> list[int]:
    from services.ingest.app import create_app

    ingest = create_app(settings).test_client()
    ids = []
    for path in paths:
        response = ingest.post("/v1/uploads", data={"file": (io.BytesIO(path.read_bytes()), path.name)}, headers=ADMIN)
        assert response.status_code in (200, 202), response.get_json()
        upload_id = response.get_json()["id"]
        result = celery_app.tasks[task_names.PROCESS_UPLOAD].apply(args=[upload_id])
        assert result.successful() and result.result == "loaded", result.result
        ids.append(upload_id)
    return ids


@pytest.fixture(scope="module")
def real_warehouse(engine, redis_client, settings, celery_app):
    reset_state(engine, redis_client)
    load_files(settings, celery_app, real_files())
    return engine


@pytest.fixture(scope="module")
def reporting(real_warehouse, settings):
    from services.reporting.app import create_app

    return create_app(settings).test_client()


@pytest.fixture(scope="module")
def stack(real_warehouse, tmp_path_factory):
    """Orders (whose /signin is every page's) and reporting as deployed, over the real files, and an admin
    `dana` to sign in as: what the dashboard's browser tests run against."""
    from tests.signin import add_user

    running = Stack(tmp_path_factory.mktemp("reporting"))
    running.start_orders()
    running.start_reporting()
    add_user("dana", role="admin")
    yield running
    running.stop()


@contextmanager
def dashboard_stack(tmp_path: Path, username: str):
    """Orders (whose /signin is every page's) and reporting as deployed over what the test loaded, and an admin
    `username` to sign in as; yields the dashboard's service URL."""
    from tests.signin import add_user

    add_user(username, role="admin")
    running = Stack(tmp_path)
    running.start_orders()
    try:
        yield running.start_reporting()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def served(stack):
    return stack.url_of("reporting")


@pytest.fixture
def reporting_app(settings, clean):
    from services.reporting.app import create_app

    return create_app(settings)


def get_json(client, url: str, params=None, headers=ADMIN):
    response = client.get(url, query_string=params or {}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def deliver_order(orders, engine, celery_app, lines: list[tuple[dict, int]], branch: str = "Leeds") -> dict:
    """Creates the products of `lines` (product body, quantity) through the orders API, orders them at
    `branch`, delivers the order and loads it into the warehouse the way the worker does (the live path)."""
    def post(path, body):
        response = orders.post(path, json=body, headers=ADMIN)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    items = [{"product_id": post("/v1/products", product)["id"], "quantity": quantity} for product, quantity in lines]
    courier = post("/v1/couriers", {"name": "Cora Courier", "phone": "07700 900001", "branch": branch})
    order = post("/v1/orders", {"branch": branch, "customer_name": "Zoë Livewire", "customer_address": "1 Road",
                                "customer_phone": "07700 900123", "payment_method": "CASH",
                                "courier_id": courier["id"], "items": items})
    for status in ("out_for_delivery", "delivered"):
        etag = orders.get(f"/v1/orders/{order['id']}", headers=ADMIN).headers["ETag"]
        moved = orders.post(f"/v1/orders/{order['id']}/status", json={"status": status},
                            headers={**ADMIN, "If-Match": etag})
        assert moved.status_code == 200, moved.get_json()
    with engine.connect() as conn:
        outbox_id = conn.execute(text("SELECT id FROM orders.outbox WHERE order_id = :o"), {"o": order["id"]}).scalar()
    assert celery_app.tasks[task_names.LOAD_LIVE_ORDER].apply(args=[outbox_id]).result == "loaded"
    return order
