"""/healthz, /readyz and /metrics for the processes that are not web services (the transform worker and
beat), so Kubernetes probes and Prometheus treat every cafeflow container the same way."""
from __future__ import annotations

import errno
import json
import logging
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

import psycopg2
import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from services.common.metrics import process_registry
from services.common.settings import Settings


def ping_redis(url: str) -> None:
    """Raises unless Redis at `url` answers a PING within 2 s."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def dependency_checks(settings: Settings, ping_database: Callable[[], object] | None = None) -> dict[str, str]:
    """What /readyz reports, for the web services (through their pool) and the worker and beat (a fresh
    connection): PostgreSQL and Redis answer within 2 s."""
    def ping_postgres() -> None:
        conn = psycopg2.connect(settings.psycopg2_dsn, connect_timeout=2)
        try:
            conn.cursor().execute("SELECT 1")
        finally:
            conn.close()

    checks: dict[str, str] = {}
    for name, ping in (("database", ping_database or ping_postgres),
                       ("redis", lambda: ping_redis(settings.redis_url))):
        try:
            ping()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks[name] = f"unreachable: {type(exc).__name__}"
    return checks


def probe_app(settings: Settings, registry: CollectorRegistry,
              liveness: Callable[[], tuple[bool, dict]] | None = None):
    """`liveness` decides /healthz beyond "this process answers" (the worker: its consumer loop turns)."""
    metrics = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            alive, details = liveness() if liveness else (True, {})
            if alive:
                return _json(start_response, 200, {"status": "ok", **details})
            return _json(start_response, 503, {"error": {
                "code": "not_alive", "message": "the process answers but its work loop has stopped",
                "details": details, "request_id": None}})
        if path == "/readyz":
            checks = dependency_checks(settings)
            if all(value == "ok" for value in checks.values()):
                return _json(start_response, 200, {"status": "ready", "checks": checks})
            return _json(start_response, 503, {"error": {
                "code": "not_ready", "message": "a dependency is unreachable", "details": checks,
                "request_id": None}})
        if path == "/metrics":
            return metrics(environ, lambda status, headers, *rest: start_response(
                status, headers + [("X-Content-Type-Options", "nosniff")], *rest))
        return _json(start_response, 404, {"error": {"code": "not_found", "message": "no such path",
                                                     "details": None, "request_id": None}})
    return app


def _json(start_response, status: int, body: dict):
    payload = json.dumps(body).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(payload))), ("X-Content-Type-Options", "nosniff")])
    return [payload]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *_args) -> None:  # probes every few seconds would drown the JSON logs
        pass


def start_probe_server(settings: Settings, port: int, host: str, setting: str,
                       liveness: Callable[[], tuple[bool, dict]] | None = None,
                       collectors: tuple = ()) -> ThreadingWSGIServer | None:
    """Serves the probes and this process's metrics (prefork children included) from a daemon thread, plus
    `collectors` read at scrape time (beat's queue and uploads figures, the loop's liveness).

    A port another process holds is logged, naming the port and `setting` (the variable that moves it), and
    the process runs on without its probes and metrics (None): losing them must not take the worker or beat
    down, let alone the whole platform (`cafeflow up` stopped every service when it did)."""
    registry = CollectorRegistry()
    registry.register(process_registry())
    for collector in collectors:
        registry.register(collector)
    try:
        server = make_server(host, port, probe_app(settings, registry, liveness), ThreadingWSGIServer,
                             handler_class=_QuietHandler)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        logging.getLogger("cafeflow.probes").error(
            "port %s on %s is in use by another process: running without /healthz, /readyz and /metrics; "
            "set %s to a free port (0 turns them off)", port, host, setting,
            extra={"port": port, "setting": setting})
        return None
    threading.Thread(target=server.serve_forever, name="probe-server", daemon=True).start()
    return server
