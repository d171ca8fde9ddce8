"""The transform worker's Celery app (`create_celery`), with the beat schedule."""
from __future__ import annotations

from dataclasses import dataclass

from celery import Celery, signals

from services.common import metrics, task_names
from services.common.db import Database
from services.common.logging import configure_logging, request_id_var
from services.common.queue import REQUEST_ID_HEADER, celery_config
from services.common.settings import Settings, get_settings

# What each task that records its duration can end with (cafeflow_task_duration_seconds's `outcome`).
TASK_OUTCOMES = {
    task_names.PROCESS_UPLOAD: ("loaded", "failed", "skipped", "retry"),
    task_names.RETRACT_UPLOAD: ("retracted", "already_retracted", "not_requested", "unknown", "retry", "failed"),
    task_names.LOAD_LIVE_ORDER: ("loaded", "refunded", "duplicate", "skipped", "failed"),
}


@dataclass
class TransformContext:
    settings: Settings
    db: Database


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("cafeflow-transform")
    app.conf.update(celery_config(settings))
    app.conf.include = ["services.transform.tasks", "services.transform.live", "services.transform.sweeper"]
    sweep = {"schedule": settings.sweep_interval_seconds, "options": {"expires": settings.sweep_interval_seconds}}
    hourly = {"schedule": 3600.0, "options": {"expires": 3600}}
    # Deterministic entry names (the task names); `expires` drops a tick that waited longer than its interval.
    app.conf.beat_schedule = {
        task_names.SWEEP_UPLOADS: {"task": task_names.SWEEP_UPLOADS, **sweep},
        task_names.PURGE_RAW_FILES: {"task": task_names.PURGE_RAW_FILES, **hourly},
        task_names.ERASE_ORDER_CUSTOMER_DETAILS: {"task": task_names.ERASE_ORDER_CUSTOMER_DETAILS, **hourly},
        # Delivered live orders whose hand-off message was lost or never sent (services/transform/live.py).
        task_names.SWEEP_LIVE_ORDERS: {"task": task_names.SWEEP_LIVE_ORDERS, **sweep},
    }
    app.cafeflow = TransformContext(settings, Database(settings.database_url, application_name="cafeflow-worker",
                                                       pool_size=2))

    @signals.setup_logging.connect(weak=False)
    def _logging(**_kwargs) -> None:
        configure_logging("transform", settings.log_level)

    @signals.worker_process_init.connect(weak=False)
    def _after_fork(**_kwargs) -> None:
        app.cafeflow.db.dispose_after_fork()

    _count_task_outcomes()
    _carry_request_id()
    return app


def _carry_request_id() -> None:
    """Puts the request id that ingest attached to the message into the task's log context."""
    tokens = {}

    def enter(task_id=None, task=None, **_kwargs) -> None:
        request_id = getattr(task.request, REQUEST_ID_HEADER, None) if task is not None else None
        tokens[task_id] = request_id_var.set(request_id)

    def leave(task_id=None, **_kwargs) -> None:
        token = tokens.pop(task_id, None)
        if token is not None:
            request_id_var.reset(token)

    signals.task_prerun.connect(enter, weak=False, dispatch_uid="cafeflow-request-id-enter")
    signals.task_postrun.connect(leave, weak=False, dispatch_uid="cafeflow-request-id-leave")


def _count_task_outcomes() -> None:
    """cafeflow_celery_tasks_total for every task; process_upload also records its own durations."""
    def counter(outcome: str):
        def record(sender=None, **_kwargs) -> None:
            metrics.CELERY_TASKS.labels(getattr(sender, "name", str(sender)), outcome).inc()
        return record

    for signal, outcome in ((signals.task_success, "succeeded"), (signals.task_failure, "failed"),
                            (signals.task_retry, "retried")):
        # dispatch_uid: connecting again (one create_celery per test) does not double-count.
        signal.connect(counter(outcome), weak=False, dispatch_uid=f"cafeflow-task-{outcome}")


def zero_worker_metrics(app: Celery) -> None:
    """The worker's families with every label value it can produce, at 0, before its first task (so Prometheus
    counts the first load, failure and live order: see services/common/metrics.py)."""
    app.loader.import_default_modules()
    names = sorted(name for name in app.tasks if not name.startswith("celery."))
    metrics.CELERY_TASKS.zero(names, metrics.CELERY_TASK_OUTCOMES)
    metrics.TASK_FAILURES.zero(TASK_OUTCOMES, metrics.TASK_FAILURE_KINDS)
    for task, outcomes in TASK_OUTCOMES.items():
        metrics.TASK_DURATION.zero([task], outcomes)
    metrics.ROWS.zero(metrics.ROW_OUTCOMES)
    metrics.UPLOADS_FINISHED.zero(metrics.UPLOAD_FINISHED_STATUSES)
    metrics.UPLOADS_REQUEUED.zero()
    metrics.LIVE_ORDERS_RESENT.zero()
