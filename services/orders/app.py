"""Orders service: `create_app(settings=None)`."""
from __future__ import annotations

from flask import Flask

from services.common.queue import producer
from services.common.sessions import register_page_sessions
from services.common.settings import Settings, get_settings
from services.common.web import create_service_app
from services.orders.api import catalog, orders, page, signin, users
from services.orders.passwords import dummy_hash
from services.orders.throttle import register_login_throttle


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app, api, _db = create_service_app(
        __name__, service="orders", settings=settings, title="cafeflow orders",
        description="Live delivery orders: products, couriers, orders and their status; delivered orders "
                    "become live sales in the warehouse. Changes to an order need If-Match (428 without, "
                    "412 when stale). Every endpoint takes a bearer token; the staff page's own calls use "
                    "its sign-in session instead (changes with its CSRF token).")
    register_extensions(app, settings)
    register_blueprints(app, api)
    return app


def register_extensions(app: Flask, settings: Settings) -> None:
    app.extensions["cafeflow.celery"] = producer(settings)
    # The one sign-in of every page (/signin), its sessions and the pages' CSRF tokens.
    register_page_sessions(app, settings)
    register_login_throttle(app, settings, [users.auth, signin.bp], {"auth.issue_token", "signin.signin_submit"})
    dummy_hash()   # built now, so the first login naming an unknown account is not slower than the rest


def register_blueprints(app: Flask, api) -> None:
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for blueprint in (users.auth, users.users, catalog.products, catalog.couriers, orders.bp):
        api.register_blueprint(blueprint)
    for blueprint in (signin.bp, page.bp):   # HTML, not part of the JSON API's document
        app.register_blueprint(blueprint)
