"""One sign-in for every page of every service.

Orders owns sign-in because it owns the users and their password hashes: its /signin form checks the
password (no other service reads a hash or imports orders code) and starts ONE server-side session
(services/common/sessions.py) whose cookie belongs to the host, so the pages of all three services, and the
API calls those pages make, see it. This module is what every service needs to use that session:

- `signed_in_user(db_session)`: who this browser is signed in as, re-checked against orders.app_user on every
  request (`services.common.auth.standing_user`: deactivated, a new password, a role or branch change or a
  logout of every device end it), or None.
- `redirect_to_signin(service)`: a page's answer when nobody is: orders' /signin?next=<this page>;
  `@signed_in_page(service)` does both for a page view, which then gets the user as its first argument.
- `safe_next(target, settings)`: where a sign-in may send the browser afterwards: a path of orders, or a page
  under one of the three services' configured public URLs (CAFEFLOW_*_URL), so `next` is no open redirect.
- `session_user_for_api(db_session)`: the user of an API request that came with the cookie instead of a
  bearer token; a change (POST, PUT, PATCH, DELETE) must carry the page's CSRF token (X-CSRFToken header or
  csrf_token field), since the browser adds the cookie by itself but only our pages hold the token.
- `start_session` / `end_session`: a fresh session id at every sign-in (no fixation); signing out on any page
  deletes the one session (it ends on every page at once; the user's other browsers keep theirs).

Redis or the accounts' database unreachable: a 503 with Retry-After (`SignInUnavailable`), an HTML page on a
page and the JSON error shape on an API, never a 500 and never a guess.
"""
from __future__ import annotations

from dataclasses import replace
from functools import wraps
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, redirect, request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from services.common.auth import StandingUser, standing_user
from services.common.outages import database_unreachable
from services.common.sessions import (
    SessionRecord,
    SignInUnavailable,
    clear_session_cookie,
    csrf,
    session_id_from_request,
    session_store,
    set_session_cookie,
)
from services.common.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_NEXT = 2048


class AccountsUnavailable(SignInUnavailable):
    def __init__(self) -> None:
        super().__init__("accounts_unavailable", "sign-in is unavailable for a moment (the accounts database "
                         "does not answer); try again shortly")


def _settings() -> Settings:
    return current_app.extensions["cafeflow.settings"]


def signed_in_user(db_session: Session) -> StandingUser | None:
    """The user this browser's session stands for now, or None (no session, signed out, expired, or ended by
    what ends the user's tokens). Raises SignInUnavailable when Redis or PostgreSQL does not answer."""
    record = session_store(current_app).read(session_id_from_request())
    if record is None or record.kind != "user":
        return None
    try:
        user = standing_user(db_session, record.subject_id, record.name, record.token_version)
    except OperationalError as exc:
        if database_unreachable(exc):
            raise AccountsUnavailable() from exc
        raise
    # The branch's name as signed in: a change of branch ends the session (token version), so it is current.
    return replace(user, branch=record.branch if user.branch_key else None) if user else None


def session_user_for_api(db_session: Session) -> StandingUser | None:
    """For an API request without a bearer token: the signed-in user of its session cookie, or None (no
    cookie, or a session that no longer stands). A change must carry the CSRF token (CSRFError, a 400)."""
    if not session_id_from_request():
        return None
    if request.method not in SAFE_METHODS:
        csrf.protect()
    return signed_in_user(db_session)


def safe_next(target: str | None, settings: Settings) -> str | None:
    """`target` if a signed-in browser may be sent there: a path of orders itself ("/app"), or an absolute URL
    under one of the services' public URLs. Anything else (another host, `//host`, `https://ours@evil`,
    backslashes, spaces or control characters, which browsers repair in their own ways) is None."""
    if not target or len(target) > _MAX_NEXT or not target.isprintable() or "\\" in target \
            or any(c.isspace() for c in target):
        return None
    parts = urlsplit(target)
    if not parts.scheme and not parts.netloc:
        return target if target.startswith("/") and not target.startswith("//") else None
    if parts.scheme not in ("http", "https") or "@" in parts.netloc:
        return None
    return target if f"{parts.scheme}://{parts.netloc.lower()}" in settings.public_urls.values() else None


def signin_url(next_url: str | None = None, **extra: str) -> str:
    settings = _settings()
    query = urlencode({**({"next": next_url} if next_url else {}), **extra})
    return f"{settings.signin_url}?{query}" if query else settings.signin_url


def redirect_to_signin(service: str) -> Response:
    """Sends a browser that is not signed in to orders' sign-in page, to come back here afterwards. `here`
    is built from this service's configured public URL, not the request's Host header, so the way back is
    always one that safe_next accepts."""
    here = _settings().public_urls[service] + request.full_path.rstrip("?")
    response = redirect(signin_url(here), 303)
    response.headers["Cache-Control"] = "no-store"
    return response


def signed_in_page(service: str):
    """Decorates a page view of `service` that only a signed-in user sees: the view is called with the user
    first; a browser without a (standing) session is sent to sign in, and back to this page."""
    def decorate(view):
        @wraps(view)
        def page(*args, **kwargs):
            with current_app.extensions["cafeflow.db"].session() as db_session:
                user = signed_in_user(db_session)
            if user is None:
                return redirect_to_signin(service)
            return view(user, *args, **kwargs)
        return page
    return decorate


def start_session(response: Response, record: SessionRecord) -> Response:
    store = session_store(current_app)
    store.delete(session_id_from_request())        # a fresh id at every sign-in: no session fixation
    return set_session_cookie(response, store.create(record), _settings())


def end_session(response: Response) -> Response:
    """Signs this browser out of every page: the one session is deleted, so its cookie (and any copy of it)
    stops working on all three services at once. Nothing else is ended (the user's other browsers, API
    tokens; POST /v1/auth/logout ends all of those)."""
    session_store(current_app).delete(session_id_from_request())
    return clear_session_cookie(response, _settings())


def signed_out_redirect() -> Response:
    return end_session(redirect(signin_url(signed_out="1"), 303))


def strict_page_headers(blueprint: Blueprint, *, default_src: str = "'none'", style_src: str = "'self'",
                        img_src: str = "'self'") -> Blueprint:
    """The headers of a signed-in page's blueprint: a CSP with scripts only from this origin and never inline (an
    injected <script> or handler attribute does not run), calls only to this origin, no framing (clickjacking),
    forms only to our services (`form_action_sources`); no Referer to elsewhere; its HTML never cached (it shows
    who is signed in). nosniff and X-Frame-Options: services/common/headers.py. The staff page, the dashboard
    and the branch portal share it."""
    @blueprint.after_request
    def _page_headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = (
            f"default-src {default_src}; script-src 'self'; style-src {style_src}; img-src {img_src}; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
            f"form-action {form_action_sources(_settings())}")
        response.headers["Referrer-Policy"] = "no-referrer"
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response
    return blueprint


def form_action_sources(settings: Settings) -> str:
    """The CSP form-action sources of a page: its own origin and the three services'. Browsers apply
    form-action to the redirects after a form is sent too (sign-in sends the browser on to the page it
    came from; sign-out to orders' sign-in page)."""
    return " ".join(["'self'", *sorted(set(settings.public_urls.values()))])
