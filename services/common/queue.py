"""Celery configuration shared by the producer side (ingest, CLI) and the workers.

All settings live here, in one object, so producers and workers agree on queues and safety options.
"""
from __future__ import annotations

from celery import Celery, signals

from services.common.logging import request_id_var
from services.common.settings import Settings

# The message header that carries the HTTP request id into the task's log lines.
REQUEST_ID_HEADER = "cafeflow_request_id"


def celery_config(settings: Settings) -> dict:
    return {
        "broker_url": settings.redis_url,
        "task_default_queue": settings.transform_queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,                 # a task is acked only once it finished
        "task_reject_on_worker_lost": True,     # ... and requeued when its worker process dies
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_ignore_result": True,             # status lives in our own tables
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        # A producer (ingest) must not hang on a dead broker: the upload is already stored and the
        # sweeper enqueues it later.
        "broker_connection_timeout": 2,
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                                      "interval_max": 0.2},
        "worker_hijack_root_logger": False,
        # No "task-sent" event: it doubled the Redis publishes per upload; Flower still sees
        # received/started/succeeded from the workers' events.
        "worker_send_task_events": True,
        "enable_utc": True,
        "timezone": "UTC",
    }


def producer(settings: Settings) -> Celery:
    """A Celery client that only sends tasks by name; it imports no worker code."""
    app = Celery("cafeflow-producer")
    app.conf.update(celery_config(settings))
    signals.before_task_publish.connect(_attach_request_id, weak=False, dispatch_uid="cafeflow-request-id")
    return app


def _attach_request_id(headers=None, **_kwargs) -> None:
    """A file's request id follows it from the HTTP request into the worker's log lines."""
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)
