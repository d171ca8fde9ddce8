"""/app: the staff page. One static HTML page with its script and style as files beside it (no CDN: branch
networks may have no internet); it talks to the JSON API with the bearer token it gets at login."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC = Path(__file__).resolve().parent.parent / "static"
bp = Blueprint("page", __name__)

# Nothing inline and nothing from elsewhere: an injected <script> or handler attribute does not run, the
# page cannot be framed (clickjacking), and it talks only to this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _static(name: str):
    response = send_from_directory(STATIC, name, max_age=0)
    response.headers["Content-Security-Policy"] = CSP     # nosniff and X-Frame-Options: services/common/headers.py
    return response


@bp.get("/app")
def staff_page():
    return _static("app.html")


@bp.get("/app.js")
def staff_page_script():
    return _static("app.js")


@bp.get("/app.css")
def staff_page_style():
    return _static("app.css")
