"""/signin and /signout: the one sign-in of every page of every service. It lives here because orders owns
the users and their password hashes; what the other services need to read the session it starts is in
services/common/signin.py. The password check and the throttle are the token endpoint's own
(services/orders/auth.py `password_login`, services/orders/throttle.py)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, redirect, render_template, request, send_from_directory
from flask_limiter import RateLimitExceeded

from services.common.metrics import LOGINS
from services.common.sessions import SessionRecord, page_blueprint
from services.common.signin import form_action_sources, safe_next, signed_in_user, signed_out_redirect, start_session
from services.orders.auth import password_login
from services.orders.passwords import dummy_hash, verify_password
from services.orders.throttle import give_back_login_attempt, login_retry_after

STATIC = Path(__file__).resolve().parent.parent / "static"
LANDING = "/app"           # where a sign-in without a (usable) `next` goes: the staff page
_MAX_USERNAME, _MAX_PASSWORD = 100, 200

bp = page_blueprint(Blueprint("signin", __name__, template_folder="../templates"))


def _ctx():
    return current_app.extensions["cafeflow.db"], current_app.extensions["cafeflow.settings"]


@bp.after_request
def _headers(response):
    # Nothing inline and nothing from elsewhere; the form may send the browser on (after signing in) only to
    # the services' own pages.
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
            f"form-action {form_action_sources(current_app.extensions['cafeflow.settings'])}; frame-ancestors 'none'")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _form(status: int = 200, *, error: str | None = None, next_url: str | None = None, notice: str | None = None,
          username: str = "", user=None, headers: dict[str, str] | None = None):
    body = render_template("signin.html", error=error, next_url=next_url, notice=notice, username=username,
                           user=user, landing=next_url or LANDING)
    return body, status, headers or {}


def _next_from(value: str | None) -> tuple[str | None, str | None]:
    """(the usable next, a notice when one was asked for and refused)."""
    usable = safe_next(value, _ctx()[1])
    if value and usable is None:
        return None, ("The link you followed asked to send you to an address outside cafeflow after signing in. "
                      "That was refused: you will go to the staff page instead.")
    return usable, None


@bp.get("/signin")
def signin_form():
    next_url, notice = _next_from(request.args.get("next"))
    if request.args.get("signed_out") and notice is None:
        notice = "You are signed out of every cafeflow page."
    db, _settings = _ctx()
    with db.session() as session:
        user = signed_in_user(session)
    return _form(next_url=next_url, notice=notice, user=user)


@bp.post("/signin")
def signin_submit():
    # services/orders/throttle.py has counted this attempt against the address and the account already.
    next_url, notice = _next_from(request.form.get("next"))
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    user = None
    if 0 < len(username.strip()) <= _MAX_USERNAME and username.isprintable() and 0 < len(password) <= _MAX_PASSWORD:
        db, _settings = _ctx()
        with db.session() as session:
            user = password_login(session, username, password)
    else:
        verify_password(password[:_MAX_PASSWORD], dummy_hash())    # the same work as any other refusal
        LOGINS.labels("refused").inc()
    if user is None:
        return _form(401, error="Wrong username or password.", next_url=next_url, notice=notice,
                     username=username[:_MAX_USERNAME] if username.isprintable() else "")
    give_back_login_attempt(current_app)
    record = SessionRecord(kind="user", subject_id=user.id, name=user.username, role=user.role, branch=user.branch,
                           token_version=user.token_version)
    return start_session(redirect(next_url or LANDING, 303), record)


@bp.errorhandler(RateLimitExceeded)
def _too_many_attempts(_exc: RateLimitExceeded):
    LOGINS.labels("throttled").inc()
    retry_after = login_retry_after(current_app, _ctx()[1])
    wait = f"{retry_after} seconds" if retry_after < 120 else f"{-(-retry_after // 60)} minutes"
    next_url, notice = _next_from(request.form.get("next"))
    return _form(429, error=f"Too many sign-in attempts for this account or from this address. Wait {wait} and "
                 "try again.", next_url=next_url, notice=notice, headers={"Retry-After": str(retry_after)})


@bp.post("/signout")
def signout():
    return signed_out_redirect()


@bp.get("/signin/signin.css")
def signin_style():
    return send_from_directory(STATIC, "signin.css", max_age=0)
