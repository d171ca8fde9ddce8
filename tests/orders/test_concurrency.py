"""Two clients at once: If-Match makes one win and the other get 412; Idempotency-Key makes retried
creates (also concurrent ones) return the first order."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from tests.orders.conftest import order_body


def _at_once(count: int, call):
    barrier = threading.Barrier(count)

    def run(index: int):
        barrier.wait()
        return call(index)
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_two_changes_with_the_same_etag_one_wins_the_other_gets_412(orders_app, admin, menu, clean):
    api = orders_app.test_client()
    created = api.post("/v1/orders", json=order_body(menu, courier_id=menu.leeds_courier["id"]), headers=admin)
    order_id, etag = created.get_json()["id"], created.headers["ETag"]

    def change(index: int):
        client = orders_app.test_client()
        if index == 0:
            return client.post(f"/v1/orders/{order_id}/status", json={"status": "out_for_delivery"},
                               headers={**admin, "If-Match": etag})
        return client.patch(f"/v1/orders/{order_id}", json={"customer_address": "2 Other Road"},
                            headers={**admin, "If-Match": etag})

    results = _at_once(2, change)
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 412], [r.get_json() for r in results]
    loser = next(r for r in results if r.status_code == 412)
    assert loser.get_json()["error"]["code"] == "precondition_failed"
    final = api.get(f"/v1/orders/{order_id}", headers=admin).get_json()
    winner = next(r for r in results if r.status_code == 200).get_json()
    # Nothing lost: the stored order is exactly the winner's result, and its version moved by one.
    assert final["version"] == 2 and final == {**winner, "history": final["history"]}
    with clean.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders.status_change")).scalar() == len(final["history"])


def test_many_concurrent_status_changes_with_one_etag_apply_once(orders_app, admin, menu):
    api = orders_app.test_client()
    created = api.post("/v1/orders", json=order_body(menu), headers=admin)
    order_id, etag = created.get_json()["id"], created.headers["ETag"]
    results = _at_once(6, lambda _i: orders_app.test_client().post(
        f"/v1/orders/{order_id}/status", json={"status": "cancelled"}, headers={**admin, "If-Match": etag}))
    assert sorted(r.status_code for r in results) == [200] + [412] * 5
    history = api.get(f"/v1/orders/{order_id}", headers=admin).get_json()["history"]
    assert [h["to_status"] for h in history] == ["preparing", "cancelled"]


def test_missing_if_match_is_428_and_a_stale_one_412(api, admin, menu):
    created = api.post("/v1/orders", json=order_body(menu), headers=admin)
    order_id, etag = created.get_json()["id"], created.headers["ETag"]
    missing = api.post(f"/v1/orders/{order_id}/status", json={"status": "cancelled"}, headers=admin)
    assert missing.status_code == 428 and missing.get_json()["error"]["details"] == {"etag": etag}
    assert api.patch(f"/v1/orders/{order_id}", json={"customer_name": "A B"}, headers=admin).status_code == 428
    changed = api.patch(f"/v1/orders/{order_id}", json={"customer_name": "A B"}, headers={**admin, "If-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    stale = api.post(f"/v1/orders/{order_id}/status", json={"status": "cancelled"},
                     headers={**admin, "If-Match": etag})
    assert stale.status_code == 412 and stale.get_json()["error"]["details"] == {"etag": changed.headers["ETag"]}
    # A list of tags matches when one is current; '*' explicitly means "whatever it is now".
    listed = api.post(f"/v1/orders/{order_id}/status", json={"status": "cancelled"},
                      headers={**admin, "If-Match": f'"nope", {changed.headers["ETag"]}'})
    assert listed.status_code == 200


def test_same_idempotency_key_twice_returns_the_first_order(api, admin, menu, clean):
    headers = {**admin, "Idempotency-Key": "till-7-order-0001"}
    first = api.post("/v1/orders", json=order_body(menu), headers=headers)
    again = api.post("/v1/orders", json=order_body(menu), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"] and again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post("/v1/orders", json=order_body(menu), headers={**admin, "Idempotency-Key": "till-7-order-0002"})
    assert other.get_json()["id"] != first.get_json()["id"]
    reused = api.post("/v1/orders", json=order_body(menu, payment_method="CASH"), headers=headers)
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "idempotency_key_reused"
    with clean.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders.customer_order")).scalar() == 2


def test_same_idempotency_key_concurrently_creates_one_order(orders_app, admin, menu, clean):
    headers = {**admin, "Idempotency-Key": "flaky-wifi-retry"}
    results = _at_once(8, lambda _i: orders_app.test_client().post("/v1/orders", json=order_body(menu),
                                                                   headers=headers))
    assert [r.status_code for r in results] == [201] * 8, [r.get_json() for r in results]
    assert len({r.get_json()["id"] for r in results}) == 1
    with clean.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders.customer_order")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM orders.order_item")).scalar() == 2
