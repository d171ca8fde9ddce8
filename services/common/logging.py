"""JSON logs on stdout, each record carrying request_id / task_id / upload_id when known."""
from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("task_id", default=None)
upload_id_var: ContextVar[int | None] = ContextVar("upload_id", default=None)

_CONTEXT = (("request_id", request_id_var), ("task_id", task_id_var), ("upload_id", upload_id_var))


class ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        for name, var in _CONTEXT:
            if getattr(record, name, None) is None:
                value = var.get()
                if value is not None:
                    setattr(record, name, value)
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(ContextFilter(service))
    handler.setFormatter(JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "severity", "name": "logger", "asctime": "timestamp"},
        timestamp="timestamp",
        reserved_attrs=None,
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
