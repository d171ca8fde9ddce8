"""Browser sign-in for the HTML pages of every service: a server-side session in Redis, its cookie, and
CSRF protection of the pages' forms.

The cookie holds only a random session id (256 bits); the session itself (who, with which role, branch
and token version) lives in Redis under a digest of that id, so the cookie carries no credential, a Redis
dump holds no usable cookie, and signing out deletes the session: a copied cookie stops working at once.
Whoever reads a session re-checks it against the database on every request (the user's row and token
version, or the API token's revocation), so a session never outlives what it stands for either.

Redis unreachable: `SessionStoreUnavailable`, a 503 with Retry-After in the JSON error shape (a page
cannot say who is signed in without it; it must not answer 500, and must not guess).

Forms: `protect_forms(blueprint)` makes every POST/PUT/PATCH/DELETE of a page blueprint carry
Flask-WTF's CSRF token (`{{ csrf_token() }}` in the form), so another site cannot post to them (login CSRF
included: it would sign the victim's browser in as the attacker). JSON APIs are not protected this way and
need not be: they take bearer tokens, which a browser never adds by itself.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass

import redis
from flask import Blueprint, Flask, Response, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from services.common.crypto import derive_key
from services.common.errors import ApiError, error_response
from services.common.settings import Settings

SESSION_COOKIE = "cafeflow_session"
# Flask's own signed cookie; it holds only the CSRF secret of Flask-WTF.
CSRF_COOKIE = "cafeflow_csrf"
SESSION_KEY_PREFIX = "cafeflow:session:"
RETRY_AFTER_SECONDS = 5
_FLASK_SECRET_PURPOSE = b"cafeflow page forms csrf v1"
_MAX_SESSION_ID = 128

csrf = CSRFProtect()


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


class SessionStoreUnavailable(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "session_store_unavailable", "sign-in is unavailable for a moment (Redis does not "
                         "answer); try again shortly", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


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
    # HttpOnly: no script reads it. SameSite=Strict: no other site makes the browser send it. Secure in
    # production (TLS at the ingress or the proxy). Path /: one sign-in may serve every page of the host.
    return {"httponly": True, "samesite": "Strict", "secure": settings.env == "production", "path": "/"}


def set_session_cookie(response: Response, session_id: str, settings: Settings) -> Response:
    response.set_cookie(SESSION_COOKIE, session_id, max_age=settings.user_token_ttl_seconds,
                        **_cookie_options(settings))
    return response


def clear_session_cookie(response: Response, settings: Settings) -> Response:
    response.delete_cookie(SESSION_COOKIE, **_cookie_options(settings))
    return response


def register_page_sessions(app: Flask, settings: Settings) -> SessionStore:
    """The session store of this app, and Flask-WTF's CSRF on the forms of `protect_forms` blueprints."""
    store = SessionStore(settings.redis_url, settings.user_token_ttl_seconds)
    app.extensions["cafeflow.sessions"] = store
    options = _cookie_options(settings)
    app.secret_key = derive_key(settings.secret_key.get_secret_value(), _FLASK_SECRET_PURPOSE).hex()
    app.config.update(
        SESSION_COOKIE_NAME=CSRF_COOKIE, SESSION_COOKIE_HTTPONLY=options["httponly"],
        SESSION_COOKIE_SAMESITE=options["samesite"], SESSION_COOKIE_SECURE=options["secure"],
        # Only blueprints given to protect_forms are checked: the JSON APIs take bearer tokens.
        WTF_CSRF_CHECK_DEFAULT=False,
        # The token lives as long as the browser's CSRF cookie; a login page left open still works.
        WTF_CSRF_TIME_LIMIT=None)
    csrf.init_app(app)

    @app.errorhandler(CSRFError)
    def _csrf_refused(exc: CSRFError):
        return error_response(400, "csrf_failed", "the form came without a valid CSRF token (another site, or a "
                              "stale page): reload the page and try again", {"reason": exc.description})
    return store


def protect_forms(blueprint: Blueprint) -> None:
    blueprint.before_request(csrf.protect)


def session_store(app: Flask) -> SessionStore:
    return app.extensions["cafeflow.sessions"]
