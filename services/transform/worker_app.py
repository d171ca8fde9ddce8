"""Entrypoint for `celery -A services.transform.worker_app` (Flower, `celery inspect ping`)."""
from services.transform.celery_app import create_celery

app = create_celery()
