"""/dashboard: the morning page for managers. Signing in is orders' /signin (one account for every page;
services/common/signin.py): without a session the page sends the browser there and back. Every request
re-checks the user behind the session, so a deactivation, a password or role change or a sign-out on any
page ends it at once. Sign-out here posts (with its CSRF token) to /dashboard/signout, which ends the one
session of every page. Charts use plotly.js's cartesian bundle (scripts/vendor-plotly.sh), served from here:
the page loads nothing from another origin."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, render_template, send_from_directory

from services.common.sessions import page_blueprint
from services.common.signin import form_action_sources, signed_in_page, signed_out_redirect

bp = page_blueprint(Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="../templates",
                              static_folder="../static", static_url_path="/static"))
STATIC = Path(__file__).resolve().parent.parent / "static"
# Versioned name: a browser may keep it for a year, and a new version is a new URL.
PLOTLY = "plotly-cartesian-4.1.1.min.js"


@bp.after_request
def _security_headers(response):
    # nosniff and X-Frame-Options: services/common/headers.py
    settings = current_app.extensions["cafeflow.settings"]
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action {form_action_sources(settings)}")
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
@signed_in_page("reporting")
def page(user):
    return render_template("dashboard.html", user=user)


@bp.post("/signout")
def signout():
    return signed_out_redirect()


@bp.get(f"/assets/{PLOTLY}")
def plotly_js():
    response = send_from_directory(STATIC, PLOTLY, mimetype="text/javascript", max_age=365 * 86400)
    response.cache_control.immutable = True
    return response
