"""Prometheus metrics. Multiprocess-safe: gunicorn workers and Celery prefork children each write
to PROMETHEUS_MULTIPROC_DIR, and /metrics aggregates them."""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

HTTP_REQUESTS = Counter("cafeflow_http_requests_total", "HTTP requests", ["service", "route", "method", "status"])
HTTP_LATENCY = Histogram(
    "cafeflow_http_request_duration_seconds", "HTTP request latency", ["service", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HTTP_SQL_QUERIES = Histogram("cafeflow_http_sql_queries", "SQL statements per request", ["service", "route"],
                             buckets=(0, 1, 2, 5, 10, 20, 50, 100))
UPLOADS_RECEIVED = Counter("cafeflow_uploads_received_total", "Uploads accepted by ingest", ["outcome"])
UPLOAD_BYTES = Counter("cafeflow_upload_bytes_total", "Bytes of accepted uploads")
ROWS = Counter("cafeflow_rows_total", "Branch-file rows by outcome", ["outcome"])
UPLOADS_FINISHED = Counter("cafeflow_uploads_finished_total", "Uploads finished by the transform", ["status"])
TASK_DURATION = Histogram("cafeflow_task_duration_seconds", "Celery task duration", ["task", "outcome"],
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
TASK_FAILURES = Counter("cafeflow_task_failures_total", "Celery task failures", ["task", "error"])
UPLOADS_REQUEUED = Counter("cafeflow_uploads_requeued_total", "Uploads re-enqueued by the sweeper")
QUEUE_DEPTH = Gauge("cafeflow_queue_depth", "Messages waiting in a Celery queue", ["queue"],
                    multiprocess_mode="livemax")
# Every Celery task by outcome (the sweeper and the purge too), from Celery's signals.
CELERY_TASKS = Counter("cafeflow_celery_tasks_total", "Celery tasks finished, by outcome", ["task", "outcome"])


class QueueLengthCollector:
    """Reads the broker's queues at scrape time, so the figure is current whatever the sweeper last saw
    (cafeflow_queue_depth is its snapshot). Celery's Redis transport keeps a queue as one list per
    priority step (the name, then the name + kombu's separator + 3, 6, 9) and unacknowledged deliveries
    in the `unacked` hash."""

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


def metrics_payload() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
