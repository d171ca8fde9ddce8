"""What every Flask service shares: request ids, the access log line, metrics, JSON errors,
/healthz, /readyz, /metrics, /openapi.json and /docs (assets served locally, no CDN)."""
from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, g, jsonify, request
from flask_smorest import Api
from marshmallow import Schema, fields
from werkzeug.middleware.proxy_fix import ProxyFix

from services.common.db import Database, SqlStats, sql_stats
from services.common.errors import error_response, register_error_handlers
from services.common.headers import register_docs, register_security_headers
from services.common.json_limits import register_json_limits
from services.common.logging import configure_logging, request_id_var, upload_id_var
from services.common.metrics import HTTP_LATENCY, HTTP_REQUESTS, HTTP_SQL_QUERIES, metrics_payload, zero_web_metrics
from services.common.probes import dependency_checks
from services.common.settings import Settings

access_log = logging.getLogger("cafeflow.access")


class ErrorBody(Schema):
    code = fields.Str(required=True, metadata={"description": "stable machine-readable code"})
    message = fields.Str(required=True)
    details = fields.Raw(allow_none=True, metadata={"description": "field-level messages, when any"})
    request_id = fields.Str(allow_none=True)


class ErrorEnvelope(Schema):
    error = fields.Nested(ErrorBody, required=True)


class CafeflowApi(Api):
    """flask-smorest documenting our error shape instead of its own."""
    ERROR_SCHEMA = ErrorEnvelope


def create_service_app(import_name: str, *, service: str, settings: Settings, title: str,
                       description: str) -> tuple[Flask, Api, Database]:
    configure_logging(service, settings.log_level)
    app = Flask(import_name)
    if settings.trusted_proxies:
        # Per-client limits (the orders login throttle) need the real client address, not the ingress's.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    app.config.update(
        API_TITLE=title,
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": {"description": description}},
        JSON_SORT_KEYS=False,
    )
    app.extensions["cafeflow.settings"] = settings
    # A request's statements are bounded: threaded workers have no per-request kill (gunicorn's --timeout
    # watches the worker process), so a stuck query would hold its thread and connection for good.
    database = Database(settings.database_url, application_name=f"cafeflow-{service}",
                        statement_timeout_ms=settings.web_statement_timeout_ms)
    app.extensions["cafeflow.db"] = database
    app.extensions["cafeflow.statement_timeout_ms"] = settings.web_statement_timeout_ms   # for its 503's message
    register_request_context(app, service)
    register_security_headers(app)
    register_json_limits(app, settings)
    register_probes(app, database, settings)
    register_docs(app)
    api = CafeflowApi(app)
    register_error_handlers(app)   # after Api(), whose own HTTPException handler it replaces
    return app, api, database


def register_request_context(app: Flask, service: str) -> None:
    zeroed = []

    @app.before_request
    def _start() -> None:
        if not zeroed:
            # On the first request (a probe or the first scrape), when every route is registered: the
            # service's series start at 0 before anything is counted (services/common/metrics.py).
            zero_web_metrics(service, _routes(app))
            zeroed.append(True)
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        g.request_id_token = request_id_var.set(rid)
        g.upload_id_token = upload_id_var.set(None)
        g.sql_token = sql_stats.set(SqlStats())
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        rid = request_id_var.get()
        if rid:
            response.headers["X-Request-ID"] = rid
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        stats = sql_stats.get() or SqlStats()
        HTTP_REQUESTS.labels(service, route, request.method, str(response.status_code)).inc()
        HTTP_LATENCY.labels(service, route, request.method).observe(elapsed)
        HTTP_SQL_QUERIES.labels(service, route).observe(stats.count)
        if route not in ("/healthz", "/metrics"):
            access_log.info("request", extra={
                "endpoint": request.endpoint, "route": route, "method": request.method,
                "status": response.status_code, "duration_ms": round(elapsed * 1000, 2),
                "sql_count": stats.count, "sql_ms": round(stats.seconds * 1000, 2)})
        return response

    @app.teardown_request
    def _reset(_exc) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)
        token = g.pop("sql_token", None)
        if token is not None:
            sql_stats.reset(token)
        token = g.pop("upload_id_token", None)
        if token is not None:
            upload_id_var.reset(token)


def _routes(app: Flask) -> list[tuple[str, str]]:
    return [(rule.rule, method) for rule in app.url_map.iter_rules()
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]


def register_probes(app: Flask, database: Database, settings: Settings) -> None:
    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/favicon.ico")
    def favicon():
        # Browsers ask every page's origin for one; an empty answer keeps a 404 out of consoles and logs.
        return "", 204

    @app.get("/readyz")
    def readyz():
        checks = dependency_checks(settings, database.ping)
        if all(v == "ok" for v in checks.values()):
            return jsonify(status="ready", checks=checks)
        return error_response(503, "not_ready", "a dependency is unreachable", checks)

    @app.get("/metrics")
    def metrics():
        payload, content_type = metrics_payload()
        return payload, 200, {"Content-Type": content_type}
