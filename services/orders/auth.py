"""Who is calling: a signed-in browser (the session of /signin, on the staff page's own calls), a user's
bearer token (POST /v1/auth/token) or the admin token (ops automation); and the one password check that
both /signin and /v1/auth/token use. What each role may do: services/orders/permissions.py."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import request
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from services.common.auth import verify_user_token
from services.common.errors import ApiError
from services.common.metrics import LOGINS
from services.common.outages import database_unreachable
from services.common.settings import Settings
from services.common.signin import AccountsUnavailable, session_user_for_api
from services.common.tokens import bearer_token, same_secret
from services.orders.models import AppUser
from services.orders.passwords import dummy_hash, verify_password
from services.orders.permissions import scope_branch_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    user_id: int | None          # None for the admin token
    username: str
    role: str                    # "admin" | "manager" | "staff" (services/orders/permissions.py)
    branch_key: str | None = None     # the one branch this principal works for; None: every branch

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def key(self) -> str:
        """Stable identity for idempotency keys and history ('admin-token' or 'user:<id>')."""
        return "admin-token" if self.user_id is None else f"user:{self.user_id}"

    def sees_branch(self, branch_key: str) -> bool:
        return self.branch_key is None or self.branch_key == branch_key


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def authenticate(session: Session, settings: Settings) -> Principal:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return _session_principal(session)
    if same_secret(token, settings.admin_token.get_secret_value()):
        return Principal(user_id=None, username="admin", role="admin")
    claims = verify_user_token(settings.secret_key.get_secret_value(), token, settings.user_token_ttl_seconds)
    if claims is None:
        raise _unauthorized("the token is invalid or expired; log in again")
    # One primary-key read per request: a deactivated user, a changed role or branch, a new password or a
    # logout takes effect at once (the token's version is no longer the row's), not when the token expires.
    user = session.execute(select(AppUser.role, AppUser.branch_key, AppUser.active, AppUser.username,
                                  AppUser.token_version).where(AppUser.id == claims.user_id)).first()
    if user is None or not user.active or user.token_version != claims.token_version:
        raise _unauthorized("the token was ended (logout, password, role or branch change) or the user is "
                            "unknown or deactivated; log in again")
    return Principal(user_id=claims.user_id, username=user.username, role=user.role,
                     branch_key=scope_branch_key(user.role, user.branch_key))


def _session_principal(session: Session) -> Principal:
    """The staff page's own calls: the browser's sign-in session (changes carry its CSRF token)."""
    user = session_user_for_api(session)
    if user is None:
        raise _unauthorized("sign in at /signin, or send 'Authorization: Bearer <token>' (from POST /v1/auth/token)")
    return Principal(user_id=user.user_id, username=user.username, role=user.role,
                     branch_key=scope_branch_key(user.role, user.branch_key))


def password_login(session: Session, username: str, password: str) -> AppUser | None:
    """The active user with this name (any case) and password, else None. One scrypt run whatever the
    account: unknown and deactivated ones are checked against a dummy hash, so the time of an answer does
    not tell which accounts exist. The caller has counted the attempt (services/orders/throttle.py)."""
    try:
        user = session.execute(select(AppUser).where(func.lower(AppUser.username) == username.strip().lower())
                               ).scalar_one_or_none()
    except OperationalError as exc:
        if database_unreachable(exc):
            raise AccountsUnavailable() from exc
        raise
    usable = user is not None and user.active
    password_ok = verify_password(password, user.password_hash if usable else dummy_hash())
    if not (usable and password_ok):
        log.info("login refused")
        LOGINS.labels("refused").inc()
        return None
    LOGINS.labels("succeeded").inc()
    return user
