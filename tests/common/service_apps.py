"""The three web apps and every route of their URL maps, for tests that must cover each endpoint (a route
added later is covered without editing them)."""
from __future__ import annotations

import importlib

from werkzeug.routing.converters import NumberConverter

SERVICES = {"ingest": "services.ingest.app", "orders": "services.orders.app", "reporting": "services.reporting.app"}


def create_apps(settings) -> dict:
    return {name: importlib.import_module(module).create_app(settings) for name, module in SERVICES.items()}


def every_route(app, static_file: str = "x"):
    """(method, url) of every route but HEAD and OPTIONS, with a sample value for each path argument (1 for
    numbers, `static_file` for a file name)."""
    for rule in app.url_map.iter_rules():
        values = {name: 1 if isinstance(converter, NumberConverter) else "x"
                  for name, converter in rule._converters.items()}
        if "filename" in values:
            values["filename"] = static_file
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, url
