"""/dashboard: the morning page for managers. Its login takes a token (a reporting API token or an orders
access token; orders users and their passwords live in the orders schema, which this service must not
read) and signs the browser in with a server-side session (services/common/sessions.py): the cookie holds a
random id, never the token. Every request re-checks what the session stands for, so a revoked token, a
logout, a password or role change ends it at once; signing out deletes it. The forms carry CSRF tokens.
Charts use the plotly.js bundled in the plotly wheel, served from here: the page loads nothing from another
origin."""
from __future__ import annotations

from pathlib import Path

import plotly
from flask import (
    Blueprint,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from services.common.sessions import (
    clear_session_cookie,
    protect_forms,
    session_id_from_request,
    session_store,
    set_session_cookie,
)
from services.reporting.auth import identify, session_reader

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="../templates",
               static_folder="../static", static_url_path="/static")
protect_forms(bp)
PLOTLY_DIR = Path(plotly.__file__).parent / "package_data"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


@bp.after_request
def _security_headers(response):
    response.headers["Content-Security-Policy"] = CSP     # nosniff and X-Frame-Options: services/common/headers.py
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


def _signed_in() -> bool:
    if not session_id_from_request():
        return False
    with current_app.extensions["cafeflow.db"].session() as db_session:
        return session_reader(db_session) is not None


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
    settings = current_app.extensions["cafeflow.settings"]
    reader = None
    if token and len(token) <= 4096:
        with current_app.extensions["cafeflow.db"].session() as db_session:
            reader = identify(db_session, settings, token)
    if reader is None:
        return render_template("login.html", error="That token is unknown, expired, or not allowed to read "
                               "reports."), 401
    if reader.kind == "admin":
        # The admin token also uploads files and manages users, and it cannot be revoked without rotating it
        # everywhere: it is for automation, not for a browser session.
        return render_template("login.html", error="The admin token cannot be used to log in here: create a "
                               "reporting token with 'cafeflow token add NAME --scope reporting'."), 403
    store = session_store(current_app)
    store.delete(session_id_from_request())            # a fresh id at every sign-in (no session fixation)
    response = redirect(url_for("dashboard.page"))
    return set_session_cookie(response, store.create(reader.session_record()), settings)


@bp.post("/logout")
def logout():
    session_store(current_app).delete(session_id_from_request())
    response = make_response(redirect(url_for("dashboard.login")))
    return clear_session_cookie(response, current_app.extensions["cafeflow.settings"])


@bp.get("/assets/plotly.min.js")
def plotly_js():
    return send_from_directory(PLOTLY_DIR, "plotly.min.js", mimetype="text/javascript", max_age=86400)
