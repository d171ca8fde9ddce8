"""Ingest service: `create_app(settings=None)`."""
from __future__ import annotations

from flask import Flask

from services.common.queue import producer
from services.common.sessions import register_page_sessions
from services.common.settings import Settings, get_settings
from services.common.web import create_service_app
from services.ingest.api import coverage, portal, uploads

MULTIPART_OVERHEAD = 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app, api, _db = create_service_app(
        __name__, service="ingest", settings=settings, title="cafeflow ingest",
        description="Branches post their till files here; each new file is stored encrypted and loaded once.")
    register_limits(app, settings)
    register_queue(app, settings)
    # The one sign-in of every page (orders' /signin): its session cookie is accepted by the API too, with the
    # page's CSRF token on every change (services/common/signin.py), ready for the branch portal.
    register_page_sessions(app, settings)
    register_blueprints(api)
    app.register_blueprint(portal.bp)      # the branch manager's page (HTML, not part of the API document)
    return app


def register_limits(app: Flask, settings: Settings) -> None:
    # Werkzeug answers 413 while streaming, before a too-large body is read to the end.
    app.config["MAX_CONTENT_LENGTH"] = settings.upload_max_bytes + MULTIPART_OVERHEAD
    # Werkzeug applies this to its multipart parse buffer (file parts pass through it too), so it must
    # stay well above its 64 KiB read size; plain text fields are tiny anyway.
    app.config["MAX_FORM_MEMORY_SIZE"] = 1024 * 1024


def register_queue(app: Flask, settings: Settings) -> None:
    app.extensions["cafeflow.celery"] = producer(settings)


def register_blueprints(api) -> None:
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(uploads.bp)
    api.register_blueprint(coverage.bp)
