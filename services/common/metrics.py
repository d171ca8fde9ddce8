"""Prometheus metrics: every cafeflow family, defined once here, with the process that owns it.

Two rules make the figures true (issue 17):
- A process exposes only the families it owns. A family is created on its first use in a process, never at
  import (in prometheus_client's multiprocess mode an unlabelled metric writes its value file as soon as it
  exists, so a family defined at import showed at 0 in every process that imported this module), and in
  REGISTRY, not prometheus_client's default one (which Flower serves).
- A labelled series exists, at 0, before its first event: Prometheus's increase() and rate() count the
  difference between samples, so a series first seen at 1 (or at 12,541) counts as 0. The owning process
  calls `zero()` at start for every label value it can produce (outcomes, statuses, task names, services).

Multiprocess-safe: gunicorn workers and Celery prefork children each write to PROMETHEUS_MULTIPROC_DIR
(one per process tree, see services/cli.py), and /metrics aggregates that tree's files."""
from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

from services.common import upload_states

# Where a process's own families live when it runs without PROMETHEUS_MULTIPROC_DIR (the tests' apps).
REGISTRY = CollectorRegistry(auto_describe=True)


class Family:
    """A metric created on first use, in REGISTRY. Use it like the prometheus_client metric it wraps
    (`labels()`, `inc()`, `observe()`, `set()`)."""

    def __init__(self, kind, name: str, documentation: str, labelnames: tuple[str, ...] = (), **options) -> None:
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labelnames, self.options = labelnames, options
        self._metric = None
        self._lock = threading.Lock()

    @property
    def metric(self):
        if self._metric is None:
            with self._lock:
                if self._metric is None:
                    self._metric = self.kind(self.name, self.documentation, self.labelnames, registry=REGISTRY,
                                             **self.options)
        return self._metric

    def labels(self, *values: str):
        return self.metric.labels(*values)

    def inc(self, amount: float = 1) -> None:
        self.metric.inc(amount)

    def zero(self, *label_values: Iterable[str]) -> None:
        """Creates the series of every combination of the given label values (one iterable per label, in
        order) at 0; an unlabelled family's one series with no arguments."""
        if not self.labelnames:
            self.metric  # noqa: B018 - creating it is the point
            return
        for combination in itertools.product(*label_values):
            self.labels(*combination)


# --- every web service ---------------------------------------------------------------------------------
HTTP_REQUESTS = Family(Counter, "cafeflow_http_requests_total", "HTTP requests",
                       ("service", "route", "method", "status"))
HTTP_LATENCY = Family(Histogram, "cafeflow_http_request_duration_seconds", "HTTP request latency",
                      ("service", "route", "method"),
                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
HTTP_SQL_QUERIES = Family(Histogram, "cafeflow_http_sql_queries", "SQL statements per request", ("service", "route"),
                          buckets=(0, 1, 2, 5, 10, 20, 50, 100))
# Each route's server-error series exists from the start, so the 5xx ratio and its alert count the first 500.
# (Other statuses appear with their first request: the request-rate panel is a rate, not a count of errors.)
HTTP_ZERO_STATUSES = ("500",)

# --- ingest ----------------------------------------------------------------------------------------------
UPLOADS_RECEIVED = Family(Counter, "cafeflow_uploads_received_total", "Uploads accepted by ingest", ("outcome",))
UPLOAD_RECEIVED_OUTCOMES = ("new", "duplicate", "retry")
UPLOAD_BYTES = Family(Counter, "cafeflow_upload_bytes_total", "Bytes of accepted uploads")

# --- orders ----------------------------------------------------------------------------------------------
LIVE_ORDER_HANDOFFS = Family(Counter, "cafeflow_live_order_handoffs_total",
                             "Delivered orders handed to the warehouse queue after commit", ("outcome",))
LIVE_ORDER_HANDOFF_OUTCOMES = ("sent", "broker_unavailable")
LOGINS = Family(Counter, "cafeflow_logins_total",
                "Password logins (sign-in form and token endpoint) by outcome; throttled = refused by the "
                "per-address or per-account limit before the password was checked", ("outcome",))
LOGIN_OUTCOMES = ("succeeded", "refused", "throttled")

# --- transform worker --------------------------------------------------------------------------------------
ROWS = Family(Counter, "cafeflow_rows_total", "Branch-file rows by outcome", ("outcome",))
ROW_OUTCOMES = ("loaded", "rejected", "duplicate")
UPLOADS_FINISHED = Family(Counter, "cafeflow_uploads_finished_total", "Uploads finished by the transform",
                          ("status",))
UPLOAD_FINISHED_STATUSES = ("loaded", "failed")
TASK_DURATION = Family(Histogram, "cafeflow_task_duration_seconds", "Celery task duration", ("task", "outcome"),
                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
# A bounded set (the exception's class goes to the log): transient = the database or broker was unreachable
# (the task retries), time_limit = the soft time limit, internal = anything else (a bug or bad data).
TASK_FAILURES = Family(Counter, "cafeflow_task_failures_total", "Celery task failures", ("task", "error"))
TASK_FAILURE_KINDS = ("transient", "time_limit", "internal")
# Every Celery task by outcome (the sweepers and the purge too), from Celery's signals.
CELERY_TASKS = Family(Counter, "cafeflow_celery_tasks_total", "Celery tasks finished, by outcome",
                      ("task", "outcome"))
CELERY_TASK_OUTCOMES = ("succeeded", "failed", "retried")
UPLOADS_REQUEUED = Family(Counter, "cafeflow_uploads_requeued_total", "Uploads re-enqueued by the sweeper")
LIVE_ORDERS_RESENT = Family(Counter, "cafeflow_live_orders_resent_total",
                            "Delivered orders resent to the warehouse by the sweeper (lost or never sent)")


# The families each web service owns besides the HTTP ones, with the label values to start at 0.
SERVICE_FAMILIES: dict[str, tuple[tuple[Family, tuple[tuple[str, ...], ...]], ...]] = {
    "ingest": ((UPLOADS_RECEIVED, (UPLOAD_RECEIVED_OUTCOMES,)), (UPLOAD_BYTES, ())),
    "orders": ((LIVE_ORDER_HANDOFFS, (LIVE_ORDER_HANDOFF_OUTCOMES,)), (LOGINS, (LOGIN_OUTCOMES,))),
    "reporting": (),
}


def zero_web_metrics(service: str, routes: Iterable[tuple[str, str]]) -> None:
    """A web service's families at 0: its own counters, and each (route, method)'s server-error series."""
    for family, label_values in SERVICE_FAMILIES.get(service, ()):
        family.zero(*label_values)
    for route, method in routes:
        HTTP_REQUESTS.zero([service], [route], [method], HTTP_ZERO_STATUSES)


# --- beat (read at scrape time: one process, one figure) ---------------------------------------------------
class QueueLengthCollector:
    """Reads the broker's queues at scrape time, so the figure is current. Celery's Redis transport keeps a
    queue as one list per priority step (the name, then the name + kombu's separator + 3, 6, 9) and
    unacknowledged deliveries in the `unacked` hash."""

    def __init__(self, redis_url: str, queues: list[str]) -> None:
        self.redis_url = redis_url
        self.queues = queues

    def collect(self):
        import redis

        waiting = GaugeMetricFamily("cafeflow_queue_messages", "Messages waiting in the broker queue (Redis LLEN)",
                                    labels=["queue"])
        unacked = GaugeMetricFamily("cafeflow_queue_unacked", "Messages delivered to workers, not yet acked")
        up = GaugeMetricFamily("cafeflow_broker_up", "1 when Redis answered the last scrape")
        try:
            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=2)
            try:
                for queue in self.queues:
                    keys = [queue] + [f"{queue}\x06\x16{step}" for step in (3, 6, 9)]
                    waiting.add_metric([queue], sum(client.llen(key) for key in keys))
                unacked.add_metric([], client.hlen("unacked"))
            finally:
                client.close()
            up.add_metric([], 1)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        yield waiting
        yield unacked
        yield up


# An upload is "held past its lease" when it has been processing (claimed by a worker) for longer than the
# hard task time limit: no load may legitimately take longer, so its worker died or hangs, and the sweeper
# has not got it loaded since. Counted from the uploads table (started_at is set at each claim).
_UPLOADS_HELD = f"""
SELECT count(*) FILTER (WHERE started_at < now() - make_interval(secs => %(lease)s)),
       coalesce(extract(epoch FROM now() - min(started_at)), 0)
FROM ingest.upload WHERE status IN {upload_states.sql_list((upload_states.PROCESSING,))}
"""
# Per registered branch that ever had a file loaded: seconds since its newest loaded file arrived. The alert
# compares it with the same branch's longest gap of the week before ("past its usual time"). A file belongs
# to the branch whose token posted it, or (the admin's) to the branch it was meant for or whose rows it held.
# One pass over the loaded uploads (an OR join would compare every upload with every branch).
_LOADED = upload_states.sql_list((upload_states.LOADED,))
_BRANCH_FILE_AGE = f"""
WITH posted AS (
    SELECT b.branch_key, u.created_at FROM ingest.upload u JOIN ingest.branch b ON b.id = u.branch_id
    WHERE u.status IN {_LOADED}
    UNION ALL
    SELECT u.expected_branch_key, u.created_at FROM ingest.upload u
    WHERE u.status IN {_LOADED} AND u.expected_branch_key IS NOT NULL
    UNION ALL
    SELECT k.branch_key, u.created_at FROM ingest.upload u, unnest(u.file_branch_keys) AS k(branch_key)
    WHERE u.status IN {_LOADED}
)
SELECT b.name, extract(epoch FROM now() - max(p.created_at))
FROM posted p JOIN ingest.branch b ON b.branch_key = p.branch_key
GROUP BY b.name
"""


class UploadStateCollector:
    """Reads the uploads table at scrape time (a fresh connection, 2 s at most): uploads held past their
    lease, the oldest one processing, and each branch's time since its last loaded file."""

    def __init__(self, dsn: str, lease_seconds: float) -> None:
        self.dsn = dsn
        self.lease_seconds = lease_seconds

    def collect(self):
        import psycopg2

        up = GaugeMetricFamily("cafeflow_uploads_table_up", "1 when the uploads table answered the last scrape")
        try:
            conn = psycopg2.connect(self.dsn, connect_timeout=2, options="-c statement_timeout=2000")
            try:
                with conn.cursor() as cursor:
                    cursor.execute(_UPLOADS_HELD, {"lease": self.lease_seconds})
                    held, oldest = cursor.fetchone()
                    cursor.execute(_BRANCH_FILE_AGE)
                    branches = cursor.fetchall()
            finally:
                conn.close()
        except psycopg2.Error:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("cafeflow_uploads_held_past_lease",
                                "Uploads processing for longer than the hard task time limit (their lease)",
                                value=held)
        yield GaugeMetricFamily("cafeflow_upload_oldest_processing_seconds",
                                "Age of the oldest claim of an upload still processing (0: none)", value=float(oldest))
        ages = GaugeMetricFamily("cafeflow_branch_last_file_age_seconds",
                                 "Seconds since the newest loaded file of each branch arrived", labels=["branch"])
        for name, age in branches:
            ages.add_metric([name], float(age))
        yield ages


# --- the worker's and beat's loops (their probe server) ------------------------------------------------------
class LoopCollector:
    """Whether the process's work loop turns (the worker's consumer, beat's scheduler), as its /healthz says."""

    def __init__(self, loop: str, check) -> None:
        self.loop = loop
        self.check = check

    def collect(self):
        alive, _details = self.check()
        family = GaugeMetricFamily("cafeflow_loop_alive", "1 when the process's work loop turns (its /healthz)",
                                   labels=["loop"])
        family.add_metric([self.loop], 1 if alive else 0)
        yield family


def process_registry() -> CollectorRegistry:
    """What this process's /metrics serves: its own families (all its gunicorn workers or prefork children
    summed under PROMETHEUS_MULTIPROC_DIR, or REGISTRY in a single process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_payload(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    return generate_latest(registry or process_registry()), CONTENT_TYPE_LATEST
