"""Signed, expiring bearer tokens for people (orders-service users).

The orders service issues them at `POST /v1/auth/token`; any service verifies them with the shared
secret alone, so reporting accepts a logged-in orders user without importing orders code or reading
its tables. Each token carries its user's `token_version` (orders.app_user), and every check compares it
with the row's current one: a password change, a deactivation, a role or branch change, or a logout ends
every token issued before. Machine tokens (branch and reporting API tokens) are random and stored as
digests instead (`services.common.tokens`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.crypto import derive_key

USER_TOKEN_KEY = b"cafeflow user bearer token v1"
USER_TOKEN_PREFIX = "cfu."


@dataclass(frozen=True)
class UserClaims:
    user_id: int
    username: str
    role: str  # "admin" | "manager" | "staff"
    branch: str | None = None  # a manager, or a staff user tied to one branch, sees only that branch
    token_version: int = 0     # orders.app_user.token_version when issued; 0 never matches a user
    scopes: tuple[str, ...] = field(default_factory=tuple)


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(derive_key(secret, USER_TOKEN_KEY).hex(), salt="user-token")


def issue_user_token(secret: str, claims: UserClaims) -> str:
    payload = {"uid": claims.user_id, "name": claims.username, "role": claims.role,
               "branch": claims.branch, "ver": claims.token_version, "scopes": list(claims.scopes)}
    return USER_TOKEN_PREFIX + _serializer(secret).dumps(payload)


def verify_user_token(secret: str, token: str, max_age_seconds: int) -> UserClaims | None:
    """The claims of a valid, unexpired token, else None (never raises on a bad token)."""
    if not token.startswith(USER_TOKEN_PREFIX):
        return None
    try:
        payload = _serializer(secret).loads(token[len(USER_TOKEN_PREFIX):], max_age=max_age_seconds)
    except (SignatureExpired, BadSignature):
        return None
    try:
        return UserClaims(user_id=int(payload["uid"]), username=str(payload["name"]), role=str(payload["role"]),
                          branch=payload.get("branch"), token_version=int(payload["ver"]),
                          scopes=tuple(payload.get("scopes") or ()))
    except (KeyError, TypeError, ValueError):
        return None


# The columns of orders.app_user every service may read (orders migrations 0002 and 0005 grant them to the
# read-only reporting role too): what the user may do now, never the password hash.
_STANDING_USER = text("SELECT active, role, branch_key, token_version FROM orders.app_user WHERE id = :id")


@dataclass(frozen=True)
class StandingUser:
    user_id: int
    username: str
    role: str
    branch_key: str | None       # None for an admin (every branch) and for staff tied to no branch
    branch: str | None = None    # the branch's name, for showing (a session carries it; see signin.py)


def standing_user(db_session: Session, user_id: int, username: str, token_version: int | None) -> StandingUser | None:
    """The user a verified token or session names, as the row says now: None when deactivated, deleted, or
    when the token version moved on (a new password, a role or branch change, a logout)."""
    row = db_session.execute(_STANDING_USER, {"id": user_id}).first()
    if row is None or not row.active or row.token_version != token_version:
        return None
    return StandingUser(user_id=user_id, username=username, role=row.role,
                        branch_key=row.branch_key if row.role != "admin" else None)
