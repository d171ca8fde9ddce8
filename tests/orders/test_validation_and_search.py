"""Bad input is a JSON 422 naming the field; search filters, sorts and paginates."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from tests.orders.conftest import change_status, order_body


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"} and error["request_id"]
    return error


@pytest.mark.parametrize("change, field", [
    (lambda b, m: b.update(items=[{"product_id": 999999, "quantity": 1}]), "items.0.product_id"),
    (lambda b, m: b.update(items=[{"product_id": m.latte["id"], "quantity": 1},
                                  {"product_id": m.retired["id"], "quantity": 1}]), "items.1.product_id"),
    (lambda b, m: b.update(items=[{"product_id": m.latte["id"], "quantity": 0}]), "items.0.quantity"),
    (lambda b, m: b.update(items=[{"product_id": m.latte["id"], "quantity": 51}]), "items.0.quantity"),
    (lambda b, m: b.update(items=[]), "items"),
    (lambda b, m: b.pop("customer_name"), "customer_name"),
    (lambda b, m: b.pop("branch"), "branch"),
    (lambda b, m: b.update(payment_method="BITCOIN"), "payment_method"),
    (lambda b, m: b.update(customer_phone="call me"), "customer_phone"),
    (lambda b, m: b.update(customer_name="nul\x00byte"), "customer_name"),
    (lambda b, m: b.update(courier_id=2 ** 40), "courier_id"),
    (lambda b, m: b.update(courier_id=999), "courier_id"),
])
def test_invalid_orders_are_422_naming_the_field(api, admin, menu, clean, change, field):
    body = order_body(menu)
    change(body, menu)
    error = _error(api.post("/v1/orders", json=body, headers=admin), 422)
    assert error["message"] == f"request validation failed: {field}"
    with clean.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders.customer_order")).scalar() == 0


def test_errors_do_not_echo_customer_data(api, admin, menu):
    body = order_body(menu, customer_phone="Zoë Secret Name", customer_name="x" * 101)
    response = api.post("/v1/orders", json=body, headers=admin)
    assert response.status_code == 422 and "Zoë" not in response.get_data(as_text=True)


def test_bad_product_and_courier_input(api, admin):
    assert _error(api.post("/v1/products", json={"name": "A", "size": "Huge", "flavour": None, "price": "1"},
                           headers=admin), 422)["message"].endswith("size")
    assert _error(api.post("/v1/products", json={"name": "A", "size": None, "flavour": None, "price": "1.234"},
                           headers=admin), 422)["message"].endswith("price")
    assert _error(api.post("/v1/products", json={"name": "A", "size": None, "flavour": None, "price": "NaN"},
                           headers=admin), 422)["message"].endswith("price")
    assert _error(api.post("/v1/couriers", json={"name": "A", "phone": "07700900001", "branch": "Nowhere"},
                           headers=admin), 422)["message"].endswith("branch")
    assert _error(api.get("/v1/products/99999999999", headers=admin), 404)["code"] == "not_found"
    assert _error(api.get("/v1/orders/99999999999999999999999", headers=admin), 404)["code"] == "not_found"
    assert _error(api.post("/v1/orders", data="not json", content_type="application/json", headers=admin), 400)
    assert _error(api.get("/v1/nothing-here", headers=admin), 404)["code"] == "not_found"


def test_search_filters_sort_and_pagination(api, admin, menu, clean):
    ids = []
    for n in range(5):
        body = order_body(menu, "Leeds" if n % 2 == 0 else "London Soho", customer_phone=f"07700 90010{n}",
                          courier_id=(menu.leeds_courier if n % 2 == 0 else menu.soho_courier)["id"],
                          items=[{"product_id": (menu.latte if n < 3 else menu.tea)["id"], "quantity": n + 1}])
        ids.append(api.post("/v1/orders", json=body, headers=admin).get_json()["id"])
    assert change_status(api, admin, ids[0], "cancelled").status_code == 200

    def find(query: str) -> list[int]:
        response = api.get(f"/v1/orders?{query}", headers=admin)
        assert response.status_code == 200, response.get_json()
        return [o["id"] for o in response.get_json()["items"]]

    assert find("sort=id") == ids
    assert find("") == ids[::-1]                                   # newest first by default
    assert find("status=cancelled") == [ids[0]]
    assert find("status=preparing&sort=id") == ids[1:]
    assert find(f"courier_id={menu.soho_courier['id']}&sort=id") == [ids[1], ids[3]]
    assert find(f"product_id={menu.tea['id']}&sort=id") == [ids[3], ids[4]]
    assert find("branch=leeds&sort=id") == [ids[0], ids[2], ids[4]]
    assert find("customer_phone=07700900102") == [ids[2]]         # spacing does not matter
    assert find(f"id={ids[3]}") == [ids[3]]
    assert find("sort=-total")[0] == ids[2]                         # 3 x 2.85 is the largest
    page = api.get("/v1/orders?sort=id&page=2&page_size=2", headers=admin).get_json()
    assert (page["page"], page["page_size"], page["total"], [o["id"] for o in page["items"]]) == (2, 2, 5, ids[2:4])
    now = datetime.now(timezone.utc)
    assert find(f"created_from={(now - timedelta(hours=1)).isoformat()}&sort=id".replace("+", "%2B")) == ids
    assert find(f"created_to={(now - timedelta(hours=1)).isoformat()}".replace("+", "%2B")) == []
    assert _error(api.get("/v1/orders?page_size=1000", headers=admin), 422)["message"].endswith("page_size")
    assert _error(api.get("/v1/orders?status=lost", headers=admin), 422)["message"].endswith("status")
    assert _error(api.get("/v1/orders?sort=customer_name", headers=admin), 422)["message"].endswith("sort")


def test_passwords_with_broken_unicode_are_422_not_500(api, admin):
    body = '{"username": "una", "password": "abcdefgh\\ud800", "role": "staff", "branch": null}'
    created = api.post("/v1/users", data=body, content_type="application/json", headers=admin)
    assert created.status_code == 422 and "password" in created.get_json()["error"]["details"]["json"]
    fine = api.post("/v1/users", json={"username": "una", "password": "abcdefgh ✓", "role": "staff", "branch": None},
                    headers=admin)
    assert fine.status_code == 201
    user_id = fine.get_json()["id"]
    changed = api.patch(f"/v1/users/{user_id}", data='{"password": "\\ud83d12345678"}',
                        content_type="application/json", headers={**admin, "If-Match": "*"})
    assert changed.status_code == 422
    login = api.post("/v1/auth/token", data='{"username": "una", "password": "x\\udfff"}',
                     content_type="application/json")
    assert login.status_code == 422


def test_size_and_flavour_of_a_product_are_optional_as_the_readme_writes_them(api, admin):
    tea = api.post("/v1/products", json={"name": "Tea", "price": "1.20"}, headers=admin)
    assert tea.status_code == 201, tea.get_json()
    assert {k: tea.get_json()[k] for k in ("name", "size", "flavour", "price")} == {
        "name": "Tea", "size": None, "flavour": None, "price": "1.20"}
    spelled_out = api.post("/v1/products", json={"name": "Tea", "size": None, "flavour": None, "price": "1.30"},
                           headers=admin)
    assert spelled_out.status_code == 409                     # the same product: left out means null
    large = api.post("/v1/products", json={"name": "Tea", "size": "Large", "price": "1.50"}, headers=admin)
    assert large.status_code == 201 and large.get_json()["flavour"] is None
