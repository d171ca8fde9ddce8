"""/app: the staff page. One static HTML file with its script inline (no CDN: branch networks may
have no internet); it talks to the JSON API with the bearer token it gets at login."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC = Path(__file__).resolve().parent.parent / "static"
bp = Blueprint("page", __name__)


@bp.get("/app")
def staff_page():
    response = send_from_directory(STATIC, "app.html", max_age=0)
    # The page only talks to this origin; no inline handler may load anything from elsewhere.
    response.headers["Content-Security-Policy"] = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                                   "style-src 'self' 'unsafe-inline'; connect-src 'self'")
    return response
