"""Reporting service: `create_app(settings=None)`."""
from __future__ import annotations

import gc

from flask import Flask

from services.common.sessions import register_page_sessions
from services.common.settings import Settings, get_settings
from services.common.web import create_service_app
from services.reporting.api import dashboard, exports, reports
from services.reporting.cache import ReportCache
from services.reporting.readonly import make_read_only


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app, api, database = create_service_app(
        __name__, service="reporting", settings=settings, title="cafeflow reporting",
        description="The chain's sales as JSON reports, streamed exports and a dashboard. Every endpoint but "
                    "the probes needs a bearer token (a reporting API token, an orders user token or the admin "
                    "token) or, from the dashboard, its sign-in session.")
    make_read_only(database.engine, role=settings.reporting_db_role,
                   statement_timeout_ms=settings.reporting_statement_timeout_ms)
    app.extensions["cafeflow.statement_timeout_ms"] = settings.reporting_statement_timeout_ms
    register_cache(app, settings)
    register_session(app, settings)
    register_blueprints(app, api)
    # Everything built so far (modules, routes, the OpenAPI spec, SQLAlchemy's and marshmallow's state) lives
    # as long as the process: take it out of the collector's view. Otherwise each full collection walks it
    # all, and on the 10M-sale benchmark that was a 46 ms pause in every ~15th coverage answer (its p99).
    gc.collect()
    gc.freeze()
    return app


def register_cache(app: Flask, settings: Settings) -> None:
    app.extensions["cafeflow.report_cache"] = ReportCache(settings.redis_url, settings.reporting_cache_ttl_seconds)


def register_session(app: Flask, settings: Settings) -> None:
    # The dashboard reads the one sign-in of every page (orders' /signin; services/common/signin.py) and its
    # sign-out form carries a CSRF token.
    register_page_sessions(app, settings)


def register_blueprints(app: Flask, api) -> None:
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(reports.bp)
    api.register_blueprint(exports.bp)
    app.register_blueprint(dashboard.bp)
