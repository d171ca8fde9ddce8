"""An order's customer name, address and phone are erased ORDERS_CUSTOMER_RETENTION_DAYS after its last
change, finished or abandoned open (orders migrations 0003 and 0004, run hourly by beat); recent orders keep
them, an erased open order cannot go out for delivery until staff enter them again, and the warehouse's
pseudonymised sale does not depend on them."""
from __future__ import annotations

from itertools import count

from sqlalchemy import text

from services.common import task_names
from tests.orders.conftest import change_status, order_body

NAME, ADDRESS, PHONE = "Ottilie Erasable-Customer", "7 Forget Lane, LS2", "07700 900777"
_KEYS = count(1)


def _order(api, admin, menu, **overrides) -> int:
    body = order_body(menu, courier_id=menu.leeds_courier["id"], customer_name=NAME, customer_address=ADDRESS,
                      customer_phone=PHONE, **overrides)
    created = api.post("/v1/orders", json=body, headers={**admin, "Idempotency-Key": f"retention-{next(_KEYS)}"})
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"]


def _finish(api, admin, order_id: int, status: str) -> None:
    if status == "delivered":
        assert change_status(api, admin, order_id, "out_for_delivery").status_code == 200
    assert change_status(api, admin, order_id, status).status_code == 200


def _age(engine, order_id: int, days: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE orders.customer_order SET updated_at = now() - make_interval(days => :d) "
                          "WHERE id = :id"), {"d": days, "id": order_id})


def test_orders_lose_customer_details_after_the_retention_period(api, admin, menu, engine, run_task, settings):
    old_delivered = _order(api, admin, menu)
    old_cancelled = _order(api, admin, menu)
    old_open = _order(api, admin, menu)                              # abandoned in 'preparing'
    recent_delivered = _order(api, admin, menu)
    recent_open = _order(api, admin, menu)
    _finish(api, admin, old_delivered, "delivered")
    _finish(api, admin, old_cancelled, "cancelled")
    _finish(api, admin, recent_delivered, "delivered")
    retention = settings.orders_customer_retention_days
    erased_ids = [old_delivered, old_cancelled, old_open]
    for order_id in erased_ids:
        _age(engine, order_id, int(retention) + 1)
    _age(engine, recent_open, int(retention) - 1)
    etag_before = api.get(f"/v1/orders/{old_delivered}", headers=admin).headers["ETag"]

    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 3
    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 0                       # nothing left to erase

    for order_id in erased_ids:
        response = api.get(f"/v1/orders/{order_id}", headers=admin)
        order = response.get_json()
        assert (order["customer_name"], order["customer_address"], order["customer_phone"]) == (None, None, None)
        assert order["customer_details_erased_at"] is not None and order["total"] and order["items"]
    assert api.get(f"/v1/orders/{old_delivered}", headers=admin).headers["ETag"] != etag_before
    for order_id in (recent_delivered, recent_open):
        assert api.get(f"/v1/orders/{order_id}", headers=admin).get_json()["customer_name"] == NAME

    found = api.get("/v1/orders", query_string={"customer_phone": PHONE}, headers=admin).get_json()
    assert sorted(o["id"] for o in found["items"]) == sorted([recent_delivered, recent_open])
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT order_id FROM orders.idempotency_key ORDER BY 1")).scalars().all()
        rows = conn.execute(text("SELECT customer_order::text FROM orders.customer_order WHERE id = ANY(:ids)"),
                            {"ids": erased_ids}).scalars().all()
    assert sorted(kept) == sorted([recent_delivered, recent_open])   # request hashes of erased bodies go too
    assert not any(NAME in row or "Forget Lane" in row or "900777" in row for row in rows)


def test_an_order_abandoned_open_goes_out_again_only_once_its_details_are_entered(api, admin, menu, engine,
                                                                                  run_task, settings):
    order_id = _order(api, admin, menu)
    _age(engine, order_id, int(settings.orders_customer_retention_days) + 1)
    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 1
    erased = api.get(f"/v1/orders/{order_id}", headers=admin)
    assert erased.get_json()["status"] == "preparing" and erased.get_json()["allowed_next"] == ["cancelled"]

    refused = change_status(api, admin, order_id, "out_for_delivery")
    assert refused.status_code == 409, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "customer_details_erased" and error["details"]["allowed_next"] == ["cancelled"]

    # The name alone is not enough to deliver: still erased.
    named = api.patch(f"/v1/orders/{order_id}", json={"customer_name": "Returned Caller"},
                      headers={**admin, "If-Match": erased.headers["ETag"]})
    assert named.status_code == 200 and named.get_json()["customer_details_erased_at"] is not None
    assert change_status(api, admin, order_id, "out_for_delivery").status_code == 409

    entered = api.patch(f"/v1/orders/{order_id}", json={"customer_address": "9 New Road, LS3",
                                                        "customer_phone": "07700 900999"},
                        headers={**admin, "If-Match": named.headers["ETag"]})
    body = entered.get_json()
    assert entered.status_code == 200 and body["customer_details_erased_at"] is None, body
    assert body["allowed_next"] == ["out_for_delivery", "cancelled"]
    out = change_status(api, admin, order_id, "out_for_delivery", entered.headers["ETag"])
    assert out.status_code == 200 and out.get_json()["status"] == "out_for_delivery"
    found = api.get("/v1/orders", query_string={"customer_phone": "07700 900999"}, headers=admin).get_json()
    assert [o["id"] for o in found["items"]] == [order_id]


def test_details_entered_again_are_erased_again_after_the_retention_period(api, admin, menu, engine, run_task,
                                                                           settings):
    """Half re-entered (the order stays erased and cannot go out) or whole: either way the new details are
    kept no longer than the period after the order's last change."""
    retention = int(settings.orders_customer_retention_days)
    half, whole = _order(api, admin, menu), _order(api, admin, menu)
    for order_id in (half, whole):
        _age(engine, order_id, retention + 1)
    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 2
    for order_id, body in ((half, {"customer_name": "Half Entered"}),
                           (whole, {"customer_name": "Whole Entered", "customer_address": "3 Back Road",
                                    "customer_phone": "07700 900333"})):
        etag = api.get(f"/v1/orders/{order_id}", headers=admin).headers["ETag"]
        assert api.patch(f"/v1/orders/{order_id}", json=body, headers={**admin, "If-Match": etag}).status_code == 200
    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 0                       # just changed: kept for now

    for order_id in (half, whole):
        _age(engine, order_id, retention + 1)
    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 2
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT customer_order::text FROM orders.customer_order")).scalars().all()
    assert not any("Entered" in row or "Back Road" in row or "900333" in row for row in rows)
    for order_id in (half, whole):
        order = api.get(f"/v1/orders/{order_id}", headers=admin).get_json()
        assert order["customer_name"] is None and order["customer_details_erased_at"] is not None


def test_an_order_erased_while_out_can_still_be_delivered_without_a_customer(api, admin, menu, engine, run_task,
                                                                             settings):
    order_id = _order(api, admin, menu)
    assert change_status(api, admin, order_id, "out_for_delivery").status_code == 200
    _age(engine, order_id, int(settings.orders_customer_retention_days) + 1)
    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 1
    assert api.get(f"/v1/orders/{order_id}", headers=admin).get_json()["allowed_next"] == ["delivered", "cancelled"]

    delivered = change_status(api, admin, order_id, "delivered")
    assert delivered.status_code == 200, delivered.get_json()
    with engine.connect() as conn:
        outbox_id, payload = conn.execute(text("SELECT id, payload FROM orders.outbox WHERE order_id = :id"),
                                          {"id": order_id}).one()
    assert payload["customer_key"] is None                         # nobody to pseudonymise: not a customer
    assert run_task(task_names.LOAD_LIVE_ORDER, outbox_id) in ("loaded", "duplicate")
    with engine.connect() as conn:
        sale = conn.execute(text("SELECT customer_key FROM warehouse.fact_transaction WHERE source = 'live'")).one()
    assert sale.customer_key is None


def test_an_erased_delivered_order_still_reaches_the_warehouse_once(api, admin, menu, engine, run_task, settings):
    order_id = _order(api, admin, menu)
    _finish(api, admin, order_id, "delivered")
    _age(engine, order_id, int(settings.orders_customer_retention_days) + 1)
    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 1
    with engine.connect() as conn:
        outbox_id = conn.execute(text("SELECT id FROM orders.outbox WHERE order_id = :id"), {"id": order_id}).scalar()
    assert run_task(task_names.LOAD_LIVE_ORDER, outbox_id) in ("loaded", "duplicate")
    with engine.connect() as conn:
        sales = conn.execute(text("SELECT count(*), min(customer_key::text) FROM warehouse.fact_transaction "
                                  "WHERE source = 'live'")).one()
    assert sales[0] == 1 and sales[1] is not None                    # the pseudonym was taken at delivery


def test_beat_runs_the_erasure_hourly(celery_app):
    entry = celery_app.conf.beat_schedule[task_names.ERASE_ORDER_CUSTOMER_DETAILS]
    assert (entry["task"], entry["schedule"]) == (task_names.ERASE_ORDER_CUSTOMER_DETAILS, 3600.0)


def test_the_migration_downgrades_and_upgrades_again_with_erased_orders(api, admin, menu, engine, run_task,
                                                                        settings):
    """Downgrading 0004 restores 0003's rule; downgrading 0003 cannot bring erased details back (they become
    empty strings under 0002's NOT NULL), and upgrading again must not trip over them."""
    from alembic import command

    from services.common.migrate import HISTORIES, alembic_config

    order_id = _order(api, admin, menu)
    _finish(api, admin, order_id, "cancelled")
    _age(engine, order_id, int(settings.orders_customer_retention_days) + 1)
    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 1
    orders_history = next(h for h in HISTORIES if h.schema == "orders")

    def migrate(step, revision: str) -> None:
        with engine.begin() as conn:
            cfg = alembic_config(orders_history, settings.database_url)
            cfg.attributes["connection"] = conn
            step(cfg, revision)
    abandoned = _order(api, admin, menu)                            # open: only 0004 erases it
    try:
        migrate(command.downgrade, "0003_customer_details_retention")
        _age(engine, abandoned, int(settings.orders_customer_retention_days) + 1)
        assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 0  # 0003's rule again: finished orders only
        migrate(command.downgrade, "0002_reporting_reads_users")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT customer_name FROM orders.customer_order WHERE id = :id"),
                                {"id": order_id}).scalar() == ""
    finally:
        migrate(command.upgrade, "head")
    order = api.get(f"/v1/orders/{order_id}", headers=admin).get_json()
    assert order["customer_name"] == "" and order["customer_details_erased_at"] is None
    _age(engine, abandoned, int(settings.orders_customer_retention_days) + 1)
    assert run_task(task_names.ERASE_ORDER_CUSTOMER_DETAILS) == 1                       # 0004's rule: the open one
