"""Roles (services/orders/permissions.py) and the branch restriction: admins manage the catalogue and users;
managers run one branch and refund its orders; staff work orders; a manager, or a staff user tied to a
branch, cannot read, list, create or change another branch's orders."""
from __future__ import annotations

from tests.orders.conftest import change_status, order_body


def test_no_token_or_a_bad_token_is_401(api):
    for headers in ({}, {"Authorization": "Bearer cfu.not-a-real-token"}, {"Authorization": "Basic abc"}):
        response = api.get("/v1/orders", headers=headers)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_staff_cannot_manage_products_couriers_or_users(api, login, menu):
    staff = login("sally", "staff")
    assert api.get("/v1/products", headers=staff).status_code == 200
    assert api.get("/v1/couriers", headers=staff).status_code == 200
    for method, path, body in (
            ("post", "/v1/products", {"name": "Mocha", "size": "Large", "flavour": None, "price": "2.70"}),
            ("patch", f"/v1/products/{menu.latte['id']}", {"price": "0.01"}),
            ("post", f"/v1/products/{menu.latte['id']}/deactivate", None),
            ("post", "/v1/couriers", {"name": "X", "phone": "0123456789", "branch": "Leeds"}),
            ("patch", f"/v1/couriers/{menu.leeds_courier['id']}", {"name": "Y"}),
            ("post", f"/v1/couriers/{menu.leeds_courier['id']}/deactivate", None),
            ("post", "/v1/users", {"username": "eve", "password": "12345678", "role": "admin"}),
            ("get", "/v1/users", None)):
        response = getattr(api, method)(path, json=body, headers=staff)
        assert response.status_code == 403, (method, path)
        assert response.get_json()["error"]["code"] == "forbidden"
    assert api.get(f"/v1/products/{menu.latte['id']}", headers=staff).get_json()["price"] == "2.85"


def test_admin_user_manages_the_catalogue(api, login):
    boss = login("boss", "admin")
    created = api.post("/v1/products", json={"name": "Mocha", "size": "Large", "flavour": None, "price": "2.70"},
                       headers=boss)
    assert created.status_code == 201 and created.headers["Location"] == f"/v1/products/{created.get_json()['id']}"
    duplicate = api.post("/v1/products", json={"name": "mocha", "size": "Large", "flavour": None, "price": "2.90"},
                         headers=boss)
    assert duplicate.status_code == 409


def test_staff_of_one_branch_sees_and_changes_only_that_branch(api, admin, login, menu):
    leeds_staff = login("lee", "staff", branch="leeds")
    soho_staff = login("sol", "staff", branch="London Soho")
    anywhere = login("ann", "staff")
    leeds_order = api.post("/v1/orders", json=order_body(menu, "Leeds"), headers=leeds_staff)
    assert leeds_order.status_code == 201 and leeds_order.get_json()["branch"] == "Leeds"
    soho_order = api.post("/v1/orders", json=order_body(menu, "London Soho"), headers=soho_staff)
    assert soho_order.status_code == 201
    leeds_id, soho_id = leeds_order.get_json()["id"], soho_order.get_json()["id"]

    # create for another branch
    refused = api.post("/v1/orders", json=order_body(menu, "London Soho"), headers=leeds_staff)
    assert refused.status_code == 403
    # read, list, filter, change: the other branch's order does not exist for them
    assert api.get(f"/v1/orders/{soho_id}", headers=leeds_staff).status_code == 404
    assert [o["id"] for o in api.get("/v1/orders", headers=leeds_staff).get_json()["items"]] == [leeds_id]
    assert api.get("/v1/orders?branch=London Soho", headers=leeds_staff).get_json()["total"] == 0
    assert api.get(f"/v1/orders?id={soho_id}", headers=leeds_staff).get_json()["items"] == []
    etag = soho_order.headers["ETag"]
    assert api.post(f"/v1/orders/{soho_id}/status", json={"status": "cancelled"},
                    headers={**leeds_staff, "If-Match": etag}).status_code == 404
    assert api.patch(f"/v1/orders/{soho_id}", json={"customer_name": "Mallory"},
                     headers={**leeds_staff, "If-Match": etag}).status_code == 404
    assert api.get(f"/v1/orders/{soho_id}", headers=admin).get_json()["status"] == "preparing"
    # a courier of another branch cannot be assigned
    wrong = api.patch(f"/v1/orders/{leeds_id}", json={"courier_id": menu.soho_courier["id"]},
                      headers={**leeds_staff, "If-Match": leeds_order.headers["ETag"]})
    assert wrong.status_code == 422 and "courier_id" in wrong.get_json()["error"]["message"]
    # their own branch works, and staff without a branch see both
    assert change_status(api, leeds_staff, leeds_id, "cancelled").status_code == 200
    assert api.get("/v1/orders", headers=anywhere).get_json()["total"] == 2
    assert api.get("/v1/orders", headers=admin).get_json()["total"] == 2


def test_deactivated_user_is_locked_out_at_once(api, admin, login):
    staff = login("temp", "staff")
    user_id = api.get("/v1/users", headers=admin).get_json()["items"][0]["id"]
    assert api.patch(f"/v1/users/{user_id}", json={"active": False}, headers=admin).status_code == 200
    assert api.get("/v1/orders", headers=staff).status_code == 401
    from tests.orders.conftest import PASSWORD
    assert api.post("/v1/auth/token", json={"username": "temp", "password": PASSWORD}).status_code == 401


def test_unknown_branch_is_refused(api, admin, menu):
    response = api.post("/v1/orders", json=order_body(menu, "Atlantis"), headers=admin)
    assert response.status_code == 422 and response.get_json()["error"]["message"].endswith("branch")


def _one_request_per_action(api, menu, headers, leeds_order, delivered_order):
    """A request that needs each action of services/orders/permissions.py, and whether it was let through."""
    from services.orders import permissions as p

    def status(response):
        return response.status_code != 403

    etag = api.get(f"/v1/orders/{leeds_order}", headers=headers).headers.get("ETag", "*")
    return {
        p.READ_CATALOGUE: status(api.get("/v1/products", headers=headers)),
        p.MANAGE_CATALOGUE: status(api.patch(f"/v1/products/{menu.latte['id']}", json={"price": "2.85"},
                                             headers=headers)),
        p.MANAGE_USERS: status(api.get("/v1/users", headers=headers)),
        p.WORK_ORDERS: status(api.patch(f"/v1/orders/{leeds_order}", json={"customer_name": "Renamed"},
                                        headers={**headers, "If-Match": etag})),
        p.REFUND_ORDERS: status(change_status(api, headers, delivered_order, "refunded")),
    }


def test_what_each_role_may_do_is_the_permissions_table(api, admin, login, menu):
    """One request per action and role, against the one table: nothing is allowed or refused elsewhere."""
    from services.orders.permissions import PERMISSIONS, may

    users = {"admin": login("ada", "admin"), "manager": login("mo", "manager", branch="Leeds"),
             "staff": login("sam", "staff", branch="Leeds")}
    assert set(users) == set(PERMISSIONS)
    for role, headers in users.items():
        order = api.post("/v1/orders", json=order_body(menu, "Leeds", courier_id=menu.leeds_courier["id"]),
                         headers=admin).get_json()["id"]
        delivered = api.post("/v1/orders", json=order_body(menu, "Leeds", courier_id=menu.leeds_courier["id"]),
                             headers=admin).get_json()["id"]
        for status in ("out_for_delivery", "delivered"):
            assert change_status(api, admin, delivered, status).status_code == 200
        allowed = _one_request_per_action(api, menu, headers, order, delivered)
        assert allowed == {action: may(role, action) for action in allowed}, role


def test_a_manager_runs_their_branch_only(api, admin, login, menu):
    manager = login("mo", "manager", branch="Leeds")
    staff = login("sam", "staff", branch="Leeds")
    leeds = api.post("/v1/orders", json=order_body(menu, "Leeds", courier_id=menu.leeds_courier["id"]),
                     headers=manager)
    assert leeds.status_code == 201 and leeds.get_json()["created_by"] == "mo"
    soho = api.post("/v1/orders", json=order_body(menu, "London Soho", courier_id=menu.soho_courier["id"]),
                    headers=admin).get_json()["id"]
    assert api.post("/v1/orders", json=order_body(menu, "London Soho"), headers=manager).status_code == 403
    assert [o["id"] for o in api.get("/v1/orders", headers=manager).get_json()["items"]] == [leeds.get_json()["id"]]
    assert api.get(f"/v1/orders/{soho}", headers=manager).status_code == 404
    for order_id, headers in ((leeds.get_json()["id"], manager), (soho, admin)):
        for status in ("out_for_delivery", "delivered"):
            assert change_status(api, headers, order_id, status).status_code == 200
    # staff deliver but do not refund; the manager refunds their branch's order, not another branch's
    refused = change_status(api, staff, leeds.get_json()["id"], "refunded")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["message"] == "only admins and managers may refund delivered orders"
    assert change_status(api, manager, soho, "refunded", etag="*").status_code == 404
    refunded = change_status(api, manager, leeds.get_json()["id"], "refunded")
    assert refunded.status_code == 200 and refunded.get_json()["history"][-1]["changed_by"] == "mo"


def test_an_admin_user_works_for_every_branch_even_with_a_branch_set(api, admin, login, menu):
    boss = login("boss", "admin", branch="Leeds")
    soho = api.post("/v1/orders", json=order_body(menu, "London Soho"), headers=boss)
    assert soho.status_code == 201
    assert api.get(f"/v1/orders/{soho.get_json()['id']}", headers=boss).status_code == 200
