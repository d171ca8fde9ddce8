"""Delivered live orders into the warehouse: exactly once, also through a broker outage.

The orders app is given a REDIS_URL on a closed port: the delivery still commits and its outbox row
waits; beat's sweeper (run here as a worker runs it) later sends it, and loading it twice adds one sale."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import text

from services.common import task_names
from tests.orders.conftest import Menu, change_status, order_body
from tests.support import ADMIN_TOKEN, free_port

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def api(settings, clean):
    from services.orders.app import create_app

    return create_app(settings).test_client()


@pytest.fixture
def outage_api(settings, clean):
    """The orders app with its broker unreachable (nothing listens on that port)."""
    from services.orders.app import create_app

    dead = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    return create_app(dead).test_client()


def _menu(api) -> Menu:
    def post(path, body):
        response = api.post(path, json=body, headers=ADMIN)
        assert response.status_code == 201, response.get_json()
        return response.get_json()
    latte = post("/v1/products", {"name": "Latte", "size": "Regular", "flavour": None, "price": "2.15"})
    mocha = post("/v1/products", {"name": "Mocha", "size": "Large", "flavour": None, "price": "2.70"})
    courier = post("/v1/couriers", {"name": "Cora", "phone": "07700900001", "branch": "Leeds"})
    return Menu(latte, mocha, latte, courier, courier)


def _queued_outbox_ids(redis_client, queue: str) -> list[int]:
    ids = []
    for raw in redis_client.lrange(queue, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == task_names.LOAD_LIVE_ORDER:
            ids.append(json.loads(__import__("base64").b64decode(message["body"]))[0][0])
    return ids


def _deliver(api, menu: Menu) -> int:
    created = api.post("/v1/orders", json=order_body(menu, courier_id=menu.leeds_courier["id"], items=[
        {"product_id": menu.latte["id"], "quantity": 2}, {"product_id": menu.tea["id"], "quantity": 1}]),
        headers=ADMIN)
    assert created.status_code == 201
    order_id = created.get_json()["id"]
    assert change_status(api, ADMIN, order_id, "out_for_delivery").status_code == 200
    delivered = change_status(api, ADMIN, order_id, "delivered")
    assert delivered.status_code == 200, delivered.get_json()
    return order_id


def test_broker_outage_delays_the_sale_and_the_sweeper_loads_it_exactly_once(
        outage_api, clean, redis_client, run_task, settings):
    from services.common.metrics import REGISTRY

    def failed_sends() -> float:
        return REGISTRY.get_sample_value("cafeflow_live_order_handoffs_total",
                                         {"outcome": "broker_unavailable"}) or 0.0

    menu = _menu(outage_api)
    before = failed_sends()
    order_id = _deliver(outage_api, menu)          # 200 although the broker is down
    assert failed_sends() == before + 1            # visible to SREs in /metrics
    assert _queued_outbox_ids(redis_client, settings.transform_queue) == []
    with clean.connect() as conn:
        outbox = conn.execute(text("SELECT id, loaded_at FROM orders.outbox WHERE order_id = :o"),
                              {"o": order_id}).one()
        assert conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction")).scalar() == 0
    assert outbox.loaded_at is None

    # Before the resend timeout the sweeper leaves it alone (its first send may still arrive).
    assert run_task(task_names.SWEEP_LIVE_ORDERS) == 0
    with clean.begin() as conn:   # time passes
        conn.execute(text("UPDATE orders.outbox SET sent_at = now() - make_interval(secs => :s)"),
                      {"s": settings.live_order_resend_seconds + 1})
    assert run_task(task_names.SWEEP_LIVE_ORDERS) == 1
    assert run_task(task_names.SWEEP_LIVE_ORDERS) == 0    # just resent: not again at once
    queued = _queued_outbox_ids(redis_client, settings.transform_queue)
    assert queued == [outbox.id]

    # The worker consumes the message; a duplicate delivery of it (or of a later resend) adds nothing.
    assert run_task(task_names.LOAD_LIVE_ORDER, queued[0]) == "loaded"
    assert run_task(task_names.LOAD_LIVE_ORDER, queued[0]) == "duplicate"
    with clean.begin() as conn:   # even if the loaded mark were lost, the natural key holds
        conn.execute(text("UPDATE orders.outbox SET loaded_at = NULL"))
    assert run_task(task_names.LOAD_LIVE_ORDER, queued[0]) == "duplicate"
    with clean.connect() as conn:
        facts = conn.execute(text("SELECT total, source FROM warehouse.fact_transaction")).all()
        rollup = conn.execute(text("SELECT sum(transactions), sum(revenue) FROM warehouse.rollup_sales_hour")).one()
        assert conn.execute(text("SELECT loaded_at IS NOT NULL FROM orders.outbox")).scalar()
    assert [tuple(f) for f in facts] == [(Decimal("7.00"), "live")]
    assert tuple(rollup) == (1, Decimal("7.00"))
    assert run_task(task_names.SWEEP_LIVE_ORDERS) == 0


def test_live_sales_share_dimensions_with_file_sales(api, clean, run_task, settings):
    """A live Latte at Leeds lands on the same dim_branch and dim_product rows a file's would."""
    menu = _menu(api)
    with clean.begin() as conn:
        conn.execute(text("INSERT INTO warehouse.dim_branch (branch_key, name) VALUES ('leeds', 'Leeds')"))
        conn.execute(text("INSERT INTO warehouse.dim_product (product_key, name, size) "
                          "VALUES ('latte|regular|', 'Latte', 'Regular')"))
    _deliver(api, menu)
    with clean.connect() as conn:
        outbox_id = conn.execute(text("SELECT id FROM orders.outbox")).scalar()
    assert run_task(task_names.LOAD_LIVE_ORDER, outbox_id) == "loaded"
    with clean.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM warehouse.dim_branch")).scalar() == 1
        assert conn.execute(text("SELECT product_key FROM warehouse.dim_product ORDER BY id")).scalars().all() == [
            "latte|regular|", "mocha|large|"]


def test_the_beat_schedule_has_the_live_order_sweeper(celery_app):
    assert celery_app.conf.beat_schedule[task_names.SWEEP_LIVE_ORDERS]["task"] == task_names.SWEEP_LIVE_ORDERS
    assert "services.transform.live" in celery_app.conf.include


@pytest.mark.e2e
def test_real_worker_and_beat_load_a_delivery_made_during_a_broker_outage_exactly_once(stack, clean):
    """gunicorn orders with its broker unreachable; a real Celery worker and beat (resending after 1 s)."""
    import time

    import httpx

    from tests.support import wait_until

    url = stack.start_orders(env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, probe="/healthz")
    client = httpx.Client(base_url=url, headers=ADMIN, timeout=30)
    latte = client.post("/v1/products", json={"name": "Latte", "size": "Regular", "flavour": None, "price": "2.15"})
    courier = client.post("/v1/couriers", json={"name": "Cora", "phone": "07700900001", "branch": "Leeds"})
    created = client.post("/v1/orders", json={
        "branch": "Leeds", "customer_name": "Outage Customer", "customer_address": "1 Road",
        "customer_phone": "07700900111", "payment_method": "CASH", "courier_id": courier.json()["id"],
        "items": [{"product_id": latte.json()["id"], "quantity": 4}]})
    etag = created.headers["ETag"]
    for status in ("out_for_delivery", "delivered"):
        started = time.perf_counter()
        moved = client.post(f"{created.headers['Location']}/status", json={"status": status},
                            headers={"If-Match": etag})
        assert moved.status_code == 200, moved.text
        etag = moved.headers["ETag"]
    assert time.perf_counter() - started < 10          # a dead broker delays nobody for long
    with clean.connect() as conn:
        assert conn.execute(text("SELECT loaded_at FROM orders.outbox")).scalar() is None

    fast = {"SWEEP_INTERVAL_SECONDS": "1", "LIVE_ORDER_RESEND_SECONDS": "1"}
    stack.start_worker(env=fast)
    stack.start_beat(env=fast)

    def loaded():
        with clean.connect() as conn:
            return conn.execute(text("SELECT loaded_at IS NOT NULL FROM orders.outbox")).scalar()
    wait_until(loaded, 60, lambda: f"the sweeper did not load the delivery:\n{stack.logs()[-3000:]}")
    time.sleep(3)                                      # more sweeps: nothing more is loaded
    with clean.connect() as conn:
        facts = conn.execute(text("SELECT total, source FROM warehouse.fact_transaction")).all()
        sends = conn.execute(text("SELECT send_count FROM orders.outbox")).scalar()
    assert [tuple(f) for f in facts] == [(Decimal("8.60"), "live")]
    assert sends >= 2                                  # the first send failed; the sweeper's went through
    client.close()


def test_the_sweeper_waits_longer_after_every_send_and_never_gives_up(api, clean, run_task, settings):
    menu = _menu(api)
    _deliver(api, menu)          # sent once at delivery; the message is never consumed here
    resend = settings.live_order_resend_seconds

    def age(seconds: float, sends: int) -> None:
        with clean.begin() as conn:
            conn.execute(text("UPDATE orders.outbox SET sent_at = now() - make_interval(secs => :s), "
                              "send_count = :n"), {"s": seconds, "n": sends})

    age(resend + 1, 1)
    assert run_task(task_names.SWEEP_LIVE_ORDERS) == 1          # after one send: resend after 1x
    age(resend + 1, 2)
    assert run_task(task_names.SWEEP_LIVE_ORDERS) == 0          # after two: the wait doubled
    age(2 * resend + 1, 2)
    assert run_task(task_names.SWEEP_LIVE_ORDERS) == 1
    age(63 * resend, 50)
    assert run_task(task_names.SWEEP_LIVE_ORDERS) == 0          # capped at 64x ...
    age(64 * resend + 1, 50)
    assert run_task(task_names.SWEEP_LIVE_ORDERS) == 1          # ... and still resent, never abandoned
