"""One JSON error shape for every service: {"error": {"code", "message", "details", "request_id"}}."""
from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException

from services.common.logging import request_id_var
from services.common.outages import outage_of

log = logging.getLogger(__name__)

# Stable codes for werkzeug's own exceptions (routing 404s, 405s, oversize bodies, ...).
_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 412: "precondition_failed", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "too_many_requests",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None):
    body = {"error": {"code": code, "message": message, "details": details, "request_id": request_id_var.get()}}
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        details = None
        # flask-smorest/webargs put field-level validation messages in exc.data["messages"].
        data = getattr(exc, "data", None)
        if isinstance(data, dict) and "messages" in data:
            details = data["messages"]
        message = exc.description or exc.name
        if status == 422 and details:
            message = "request validation failed: " + ", ".join(_flatten_fields(details))
        return error_response(status, _HTTP_CODES.get(status, "http_error"), message, details)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # A dependency that does not answer is no internal error: 503 with Retry-After (services/common/outages.py).
        outage = outage_of(exc, statement_timeout_ms=current_app.extensions.get("cafeflow.statement_timeout_ms"))
        if outage is not None:
            log.warning("dependency unavailable", extra={"code": outage.code, "error_type": _type_name(exc)})
            return error_response(outage.status, outage.code, outage.message, headers=outage.headers)
        # The exception text may quote user data (a database error's DETAIL quotes the row), so the log gets
        # the type name and the traceback's frames, never the message.
        log.error("unhandled error: %s", type(exc).__name__,
                  extra={"traceback": "".join(traceback.format_tb(exc.__traceback__))})
        return error_response(500, "internal_error", "internal error; quote the request_id when reporting it")


def _type_name(exc: BaseException) -> str:
    return type(getattr(exc, "orig", None) or exc).__name__


def _flatten_fields(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            if key in ("json", "files", "form", "query", "headers"):
                out += _flatten_fields(value, prefix)
            else:
                out += _flatten_fields(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
        return out
    return [prefix.rstrip(".")] if prefix else []
