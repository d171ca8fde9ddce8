"""/dashboard: the morning page for managers. Its login takes a token (a reporting API token, an orders
access token or the admin token; orders users and their passwords live in the orders schema, which this
service must not read) and keeps it in a signed, HttpOnly, SameSite=Strict session cookie; every request
re-checks it, so a revoked or expired token stops working at once. Charts use the plotly.js bundled in
the plotly wheel, served from here: the page loads nothing from another origin."""
from __future__ import annotations

from pathlib import Path

import plotly
from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)

from services.reporting.auth import SESSION_TOKEN, identify

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="../templates",
               static_folder="../static", static_url_path="/static")
PLOTLY_DIR = Path(plotly.__file__).parent / "package_data"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


@bp.after_request
def _security_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


def _signed_in() -> bool:
    token = session.get(SESSION_TOKEN)
    if not token:
        return False
    db = current_app.extensions["cafeflow.db"]
    with db.session() as db_session:
        return identify(db_session, current_app.extensions["cafeflow.settings"], token) is not None


@bp.get("")
def page():
    if not _signed_in():
        return redirect(url_for("dashboard.login"))
    return render_template("dashboard.html")


@bp.get("/login")
def login():
    return render_template("login.html", error=None)


@bp.post("/login")
def login_submit():
    token = (request.form.get("token") or "").strip()
    db = current_app.extensions["cafeflow.db"]
    reader = None
    if token and len(token) <= 4096:
        with db.session() as db_session:
            reader = identify(db_session, current_app.extensions["cafeflow.settings"], token)
    if reader is None:
        return render_template("login.html", error="That token is unknown, expired, or not allowed to read "
                               "reports."), 401
    if reader.kind == "admin":
        # The session cookie is signed, not encrypted: the admin token (which also uploads files and manages
        # users) must not sit in a browser's cookie store.
        return render_template("login.html", error="The admin token cannot be used to log in here: create a "
                               "reporting token with 'cafeflow token add NAME --scope reporting'."), 403
    session.clear()
    session.permanent = True
    session[SESSION_TOKEN] = token
    return redirect(url_for("dashboard.page"))


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("dashboard.login"))


@bp.get("/assets/plotly.min.js")
def plotly_js():
    return send_from_directory(PLOTLY_DIR, "plotly.min.js", mimetype="text/javascript", max_age=86400)
