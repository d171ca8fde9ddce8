"""Orders service: `create_app(settings=None)`."""
from __future__ import annotations

from flask import Flask

from services.common.queue import producer
from services.common.settings import Settings, get_settings
from services.common.web import create_service_app
from services.orders.api import catalog, orders, page, users
from services.orders.passwords import dummy_hash
from services.orders.throttle import register_login_throttle


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app, api, _db = create_service_app(
        __name__, service="orders", settings=settings, title="cafeflow orders",
        description="Live delivery orders: products, couriers, orders and their status; delivered orders "
                    "become live sales in the warehouse. Changes to an order need If-Match (428 without, "
                    "412 when stale).")
    register_extensions(app, settings)
    register_blueprints(app, api)
    return app


def register_extensions(app: Flask, settings: Settings) -> None:
    app.extensions["cafeflow.celery"] = producer(settings)
    register_login_throttle(app, settings, users.auth, "auth.issue_token")
    dummy_hash()   # built now, so the first login naming an unknown account is not slower than the rest


def register_blueprints(app: Flask, api) -> None:
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for blueprint in (users.auth, users.users, catalog.products, catalog.couriers, orders.bp):
        api.register_blueprint(blueprint)
    app.register_blueprint(page.bp)   # HTML, not part of the JSON API's document
