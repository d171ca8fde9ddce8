"""Who is calling: a logged-in user (signed token from POST /v1/auth/token) or the admin token (ops
automation). Staff tied to a branch see and change only that branch's orders."""
from __future__ import annotations

from dataclasses import dataclass

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.auth import verify_user_token
from services.common.errors import ApiError
from services.common.settings import Settings
from services.common.tokens import bearer_token, same_secret
from services.orders.models import AppUser


@dataclass(frozen=True)
class Principal:
    user_id: int | None          # None for the admin token
    username: str
    role: str                    # "admin" | "staff"
    branch: str | None = None
    branch_key: str | None = None

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
        raise _unauthorized("send 'Authorization: Bearer <token>' (from POST /v1/auth/token)")
    if same_secret(token, settings.admin_token.get_secret_value()):
        return Principal(user_id=None, username="admin", role="admin")
    claims = verify_user_token(settings.secret_key.get_secret_value(), token, settings.user_token_ttl_seconds)
    if claims is None:
        raise _unauthorized("the token is invalid or expired; log in again")
    # One primary-key read per request: a deactivated user, a changed role or branch, a new password or a
    # logout takes effect at once (the token's version is no longer the row's), not when the token expires.
    user = session.execute(select(AppUser.role, AppUser.branch, AppUser.branch_key, AppUser.active, AppUser.username,
                                  AppUser.token_version).where(AppUser.id == claims.user_id)).first()
    if user is None or not user.active or user.token_version != claims.token_version:
        raise _unauthorized("the token was ended (logout, password, role or branch change) or the user is "
                            "unknown or deactivated; log in again")
    return Principal(user_id=claims.user_id, username=user.username, role=user.role, branch=user.branch,
                     branch_key=user.branch_key)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "only admins manage products, couriers and users")
