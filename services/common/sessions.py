"""Browser sessions for the HTML pages of every service: a server-side session in Redis, its cookie, and
CSRF protection of the pages' forms and of the JSON calls a page makes with the cookie.

The cookie holds only a random session id (256 bits); the session itself (who, with which role, branch
and token version) lives in Redis under a digest of that id, so the cookie carries no credential, a Redis
dump holds no usable cookie, and signing out deletes the session: a copied cookie stops working at once.
Whoever reads a session re-checks it against the database on every request (services/common/signin.py), so
a session never outlives what it stands for either. Every service reads the same Redis, so one sign-in (at
orders' /signin) serves the pages of all three, and signing out on any of them ends it on all.

Redis unreachable: `SessionStoreUnavailable`, a 503 with Retry-After (an HTML page on a page, the JSON error
shape on an API): a page cannot say who is signed in without it; it must not answer 500, and must not guess.

Pages: `page_blueprint(blueprint)` marks a blueprint as HTML pages. Every POST/PUT/PATCH/DELETE to it must
carry Flask-WTF's CSRF token (`{{ csrf_token() }}` in the form), so another site cannot post to them (login
CSRF included: it would sign the victim's browser in as the attacker), and its errors are HTML pages.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass

import redis
from flask import Blueprint, Flask, Response, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from services.common.crypto import derive_key
from services.common.errors import ApiError, error_response
from services.common.outages import RETRY_AFTER_SECONDS
from services.common.settings import Settings

SESSION_COOKIE = "cafeflow_session"
# Flask's own signed cookie; it holds only the CSRF secret of Flask-WTF.
CSRF_COOKIE = "cafeflow_csrf"
SESSION_KEY_PREFIX = "cafeflow:session:"
_FLASK_SECRET_PURPOSE = b"cafeflow page forms csrf v1"
_MAX_SESSION_ID = 128

csrf = CSRFProtect()
# Names of the blueprints that answer HTML (page_blueprint); their errors are pages too.
_PAGE_BLUEPRINTS: set[str] = set()
# The error page every service renders (services/common/templates/).
_COMMON_TEMPLATES = Blueprint("cafeflow_page_templates", __name__, template_folder="templates")


@dataclass(frozen=True)
class SessionRecord:
    """Who a browser signed in as. `kind` says what `subject_id` names: "user" (orders.app_user.id; then
    role, branch and token_version are the row's at sign-in) or "api_token" (ingest.api_token.id)."""
    kind: str
    subject_id: int
    name: str
    role: str | None = None
    branch: str | None = None
    token_version: int | None = None


class SignInUnavailable(ApiError):
    """A dependency of signing in (or of knowing who is signed in) does not answer: 503 with Retry-After."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(503, code, message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class SessionStoreUnavailable(SignInUnavailable):
    def __init__(self) -> None:
        super().__init__("session_store_unavailable", "sign-in is unavailable for a moment (Redis does not "
                         "answer); try again shortly")


class SessionStore:
    """create / read / delete sessions; each lives `ttl_seconds` from sign-in (absolute, not sliding)."""

    def __init__(self, redis_url: str, ttl_seconds: int) -> None:
        self.ttl_seconds = ttl_seconds
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)

    @staticmethod
    def _key(session_id: str) -> str:
        return SESSION_KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()

    def create(self, record: SessionRecord) -> str:
        session_id = secrets.token_urlsafe(32)
        try:
            self.client.set(self._key(session_id), json.dumps(asdict(record)), ex=self.ttl_seconds)
        except redis.RedisError as exc:
            raise SessionStoreUnavailable() from exc
        return session_id

    def read(self, session_id: str | None) -> SessionRecord | None:
        if not session_id or len(session_id) > _MAX_SESSION_ID:
            return None
        try:
            stored = self.client.get(self._key(session_id))
        except redis.RedisError as exc:
            raise SessionStoreUnavailable() from exc
        if stored is None:
            return None
        try:
            return SessionRecord(**json.loads(stored))
        except (TypeError, ValueError):
            return None

    def delete(self, session_id: str | None) -> None:
        if not session_id or len(session_id) > _MAX_SESSION_ID:
            return
        try:
            self.client.delete(self._key(session_id))
        except redis.RedisError as exc:
            raise SessionStoreUnavailable() from exc


def session_id_from_request() -> str | None:
    return request.cookies.get(SESSION_COOKIE)


def _cookie_options(settings: Settings) -> dict:
    # HttpOnly: no script reads it. SameSite=Lax: another site's forms, frames and scripts never make the
    # browser send it (their POSTs carry no session), while a link to a page opened from elsewhere (a shared
    # dashboard view in a mail) still arrives signed in; every change needs a CSRF token besides. Ports do
    # not make another site, so 127.0.0.1:8001-8003 share it. Secure in production (TLS at the ingress or
    # the proxy). Path /: one sign-in serves every page of the host. Domain only when SESSION_COOKIE_DOMAIN
    # is set (services on sub-domains of it); unset, the cookie stays with the host that set it.
    return {"httponly": True, "samesite": "Lax", "secure": settings.env == "production", "path": "/",
            "domain": settings.session_cookie_domain}


def set_session_cookie(response: Response, session_id: str, settings: Settings) -> Response:
    response.set_cookie(SESSION_COOKIE, session_id, max_age=settings.user_token_ttl_seconds,
                        **_cookie_options(settings))
    return response


def clear_session_cookie(response: Response, settings: Settings) -> Response:
    response.delete_cookie(SESSION_COOKIE, **_cookie_options(settings))
    return response


def register_page_sessions(app: Flask, settings: Settings) -> SessionStore:
    """The session store of this app, Flask-WTF's CSRF on page_blueprint forms, and the pages' error pages."""
    store = SessionStore(settings.redis_url, settings.user_token_ttl_seconds)
    app.extensions["cafeflow.sessions"] = store
    options = _cookie_options(settings)
    # One key for every service (derived from the shared secret), so a CSRF token one service's page holds is
    # good at each of them, as the session is.
    app.secret_key = derive_key(settings.secret_key.get_secret_value(), _FLASK_SECRET_PURPOSE).hex()
    app.config.update(
        SESSION_COOKIE_NAME=CSRF_COOKIE, SESSION_COOKIE_HTTPONLY=options["httponly"],
        SESSION_COOKIE_SAMESITE=options["samesite"], SESSION_COOKIE_SECURE=options["secure"],
        SESSION_COOKIE_DOMAIN=options["domain"] or False,
        # Only page blueprints (and the API calls a page makes with the cookie, services/common/signin.py) are
        # checked: API clients send bearer tokens, which a browser never adds by itself.
        WTF_CSRF_CHECK_DEFAULT=False,
        # The token lives as long as the browser's CSRF cookie; a sign-in page left open still works.
        WTF_CSRF_TIME_LIMIT=None)
    csrf.init_app(app)
    app.register_blueprint(_COMMON_TEMPLATES)

    @app.errorhandler(CSRFError)
    def _csrf_refused(exc: CSRFError):
        message = ("the form came without a valid CSRF token (another site, or a stale page): reload the page and "
                   "try again")
        if on_page():
            return error_page(400, "This form cannot be sent", "It came from another site, or the page was open "
                              "too long. Reload the page and try again.")
        return error_response(400, "csrf_failed", message, {"reason": exc.description})

    @app.errorhandler(SignInUnavailable)
    def _sign_in_unavailable(exc: SignInUnavailable):
        if on_page():
            return error_page(exc.status, "Signing in is unavailable for a moment",
                              f"{exc.message[0].upper()}{exc.message[1:]}.", exc.headers)
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    return store


def page_blueprint(blueprint: Blueprint) -> Blueprint:
    """Marks `blueprint` as HTML pages: CSRF tokens on every change it accepts, and HTML error pages."""
    _PAGE_BLUEPRINTS.add(blueprint.name)
    blueprint.before_request(csrf.protect)
    return blueprint


def on_page() -> bool:
    """Whether this request is for an HTML page (a page_blueprint's route), which answers errors as HTML."""
    return request.blueprint in _PAGE_BLUEPRINTS


def error_page(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error as a page, for people: what happened in words, and a way back (this path again)."""
    # A link back only where it is safe to follow: this page again (a GET). After a refused POST, going back
    # to the form the browser still has is the way.
    again = request.full_path.rstrip("?") if request.method == "GET" else None
    response = Response(render_template("cafeflow_page_error.html", title=title, message=message, again=again),
                        status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def session_store(app: Flask) -> SessionStore:
    return app.extensions["cafeflow.sessions"]
