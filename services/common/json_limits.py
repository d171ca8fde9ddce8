"""Bounds on JSON request bodies, for every service, checked before any parser sees them.

Python's json module recurses once per nesting level, so `[` x1000 then `]` x1000 (2 KB, no token
needed) raised RecursionError inside the request parser: an unauthenticated 500. The depth is therefore
counted here without recursion (brackets outside strings, found by one C-level regular expression), and
the size is capped before the body is read at all (Content-Length, or while streaming a chunked body).
webargs (flask-smorest) then parses the same cached bytes. The limits are settings
(JSON_MAX_BYTES, JSON_MAX_DEPTH); our own bodies are at most 4 levels deep and a few KiB.
"""
from __future__ import annotations

import re

from flask import Flask, request

from services.common.errors import ApiError
from services.common.settings import Settings

# A JSON string (with its escapes) or one bracket; brackets inside strings are skipped with their string.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


def is_json_mimetype(mimetype: str | None) -> bool:
    """What webargs and Flask parse as JSON: application/json and application/*+json."""
    if not mimetype:
        return False
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def nesting_depth(body: bytes, stop_above: int) -> int:
    """The deepest nesting of arrays and objects in `body` (0 for a scalar), counting no further than
    `stop_above` + 1. Malformed JSON gets a number too; the parser refuses it afterwards."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if len(token) != 1:
            continue                        # a string
        if token[0] in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    break
        elif depth:
            depth -= 1
    return deepest


def check_json_body(body: bytes, max_depth: int) -> None:
    if nesting_depth(body, max_depth) > max_depth:
        raise ApiError(400, "json_too_deep", f"the JSON body is nested deeper than {max_depth} levels",
                       {"max_depth": max_depth})


def register_json_limits(app: Flask, settings: Settings) -> None:
    """Every JSON body of this app: at most JSON_MAX_BYTES (413 while streaming, before it is read to
    the end) and JSON_MAX_DEPTH levels (400), whatever the endpoint and before it authenticates."""
    @app.before_request
    def _bounded_json_body() -> None:
        if not is_json_mimetype(request.mimetype):
            return
        request.max_content_length = settings.json_max_bytes   # werkzeug answers 413 past it
        check_json_body(request.get_data(cache=True), settings.json_max_depth)
