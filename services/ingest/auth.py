"""Who is posting: the admin token (any branch), a branch token (its own branch only), or a signed-in user
(an orders account: an admin for any branch, a manager or a user tied to a branch for that branch only) with
a user token as bearer, or with the browser's sign-in session (services/common/signin.py; a change must carry
the page's CSRF token)."""
from __future__ import annotations

from dataclasses import dataclass

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.auth import StandingUser, standing_user, verify_user_token
from services.common.errors import ApiError
from services.common.sessions import session_id_from_request
from services.common.settings import Settings
from services.common.signin import session_user_for_api
from services.common.tokens import bearer_token, same_secret, token_digest
from services.common.uploads import ApiToken, Branch


@dataclass(frozen=True)
class Caller:
    name: str
    is_admin: bool
    branch_id: int | None = None
    branch_name: str | None = None
    branch_key: str | None = None


def authenticate(session: Session, settings: Settings) -> Caller:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return _session_caller(session)
    if same_secret(token, settings.admin_token.get_secret_value()):
        return Caller(name="admin", is_admin=True)
    claims = verify_user_token(settings.secret_key.get_secret_value(), token, settings.user_token_ttl_seconds)
    if claims is not None:
        return _user_caller(session, standing_user(session, claims.user_id, claims.username, claims.token_version))
    found = session.execute(
        select(ApiToken, Branch).join(Branch, Branch.id == ApiToken.branch_id, isouter=True)
        .where(ApiToken.digest == token_digest(token), ApiToken.revoked_at.is_(None), ApiToken.scope == "upload")
    ).first()
    if found is None:
        raise ApiError(401, "unauthorized", "the token is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
    api_token, branch = found
    return Caller(name=api_token.name, is_admin=False, branch_id=branch.id if branch else None,
                  branch_name=branch.name if branch else None, branch_key=branch.branch_key if branch else None)


def _session_caller(session: Session) -> Caller:
    if session_id_from_request() is None:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>' (a branch token, a user token or "
                       "the admin token), or sign in", headers={"WWW-Authenticate": "Bearer"})
    return _user_caller(session, session_user_for_api(session))


def _user_caller(session: Session, user: StandingUser | None) -> Caller:
    if user is None:
        raise ApiError(401, "unauthorized", "the sign-in has ended (signed out, password or role changed, or the "
                       "account deactivated): sign in again", headers={"WWW-Authenticate": "Bearer"})
    name = f"user:{user.username}"
    if user.branch_key is None:
        if user.role == "admin":
            return Caller(name=name, is_admin=True)
        raise ApiError(403, "forbidden", "this account is not tied to a branch, so it cannot post or see branch files")
    branch = session.execute(select(Branch).where(Branch.branch_key == user.branch_key)).scalar_one_or_none()
    if branch is None:
        raise ApiError(403, "forbidden", "this account's branch is not registered (cafeflow branch add)")
    return Caller(name=name, is_admin=False, branch_id=branch.id, branch_name=branch.name, branch_key=branch.branch_key)
