"""Fixtures for the orders service: the app on the test database, users, and a small menu."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support import ADMIN_TOKEN

PASSWORD = "correct horse battery"


@pytest.fixture
def orders_app(settings, clean):
    from services.orders.app import create_app

    return create_app(settings)


@pytest.fixture
def api(orders_app):
    return orders_app.test_client()


@pytest.fixture
def admin():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def login(api, admin):
    """Creates a user through the API (as an admin does) and returns the user's bearer headers."""
    def make(username: str, role: str = "staff", branch: str | None = None) -> dict:
        created = api.post("/v1/users", json={"username": username, "password": PASSWORD, "role": role,
                                              "branch": branch}, headers=admin)
        assert created.status_code == 201, created.get_json()
        token = api.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
        assert token.status_code == 200, token.get_json()
        return bearer(token.get_json()["access_token"])
    return make


@dataclass
class Menu:
    latte: dict
    tea: dict
    retired: dict
    leeds_courier: dict
    soho_courier: dict


@pytest.fixture
def menu(api, admin) -> Menu:
    def post(path, body):
        response = api.post(path, json=body, headers=admin)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    latte = post("/v1/products", {"name": "Flavoured latte", "size": "Large", "flavour": "Hazelnut", "price": "2.85"})
    tea = post("/v1/products", {"name": "Speciality Tea", "size": None, "flavour": "Peppermint", "price": "1.30"})
    retired = post("/v1/products", {"name": "Smoothie", "size": "Regular", "flavour": None, "price": "2.00"})
    assert api.post(f"/v1/products/{retired['id']}/deactivate", headers=admin).status_code == 200
    leeds = post("/v1/couriers", {"name": "Cora Courier", "phone": "07700 900001", "branch": "Leeds"})
    soho = post("/v1/couriers", {"name": "Sam Rider", "phone": "07700 900002", "branch": "london soho"})
    return Menu(latte, tea, retired, leeds, soho)


def order_body(menu: Menu, branch: str = "Leeds", **overrides) -> dict:
    body = {"branch": branch, "customer_name": "Zoë Quarterly-Fixture", "customer_address": "1 Test Street, LS1",
            "customer_phone": "07700 900123", "payment_method": "CARD",
            "items": [{"product_id": menu.latte["id"], "quantity": 2}, {"product_id": menu.tea["id"], "quantity": 1}]}
    body.update(overrides)
    return body


def change_status(api, headers, order_id: int, status: str, etag: str | None = None):
    if etag is None:
        etag = api.get(f"/v1/orders/{order_id}", headers=headers).headers["ETag"]
    body = {"status": status, **({"reason": "test refund"} if status == "refunded" else {})}
    return api.post(f"/v1/orders/{order_id}/status", json=body, headers={**headers, "If-Match": etag})
