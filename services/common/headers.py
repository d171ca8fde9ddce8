"""Security headers on every response of every web service, and the /docs page that fits them.

- `X-Content-Type-Options: nosniff` everywhere: a browser never reads a JSON answer (which may echo a
  name or a product someone typed) as HTML or script.
- A Content-Security-Policy everywhere. HTML pages get `PAGE_CSP` unless their blueprint set a stricter
  one (the staff page and the dashboard do): scripts and styles only from this origin, no inline script,
  no plugins, and `frame-ancestors 'none'` against clickjacking. Anything else gets `NON_HTML_CSP`, which
  forbids everything should it ever be rendered.
- `X-Frame-Options: DENY` too, for browsers that predate frame-ancestors.

Swagger UI's stock page (flask-smorest's) starts it with an inline script, which PAGE_CSP forbids, so
/docs is served from static/docs.html with the start-up in static/docs-init.js instead.
"""
from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from flask import Flask, Response, send_from_directory

STATIC = Path(__file__).resolve().parent / "static"

# Swagger UI sets element styles from script, hence 'unsafe-inline' for styles only; its icons are data: URIs.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
NON_HTML_CSP = "default-src 'none'; frame-ancestors 'none'"


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        csp = PAGE_CSP if response.mimetype == "text/html" else NON_HTML_CSP
        response.headers.setdefault("Content-Security-Policy", csp)
        return response


def register_docs(app: Flask) -> None:
    """/docs (Swagger UI on /openapi.json) with every asset served from here: no CDN, no inline script."""
    @app.get("/docs")
    def docs():
        return send_from_directory(STATIC, "docs.html", max_age=0)

    @app.get("/docs/init.js")
    def docs_init():
        return send_from_directory(STATIC, "docs-init.js", mimetype="text/javascript", max_age=0)

    @app.get("/docs/assets/<path:filename>")
    def docs_assets(filename: str):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)
