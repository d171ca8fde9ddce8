"""Who may read sales figures: the admin token, an API token with scope 'reporting'
(`cafeflow token add NAME --scope reporting`) or a signed user token from the orders service, as a bearer
header; or a browser signed in at orders' /signin (the dashboard and its calls send the session cookie;
services/common/signin.py). Either way every request re-checks what the credential stands for against
the database. A manager, or a staff user tied to a branch, reads that branch only."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.auth import StandingUser, standing_user, verify_user_token
from services.common.errors import ApiError
from services.common.settings import Settings
from services.common.signin import session_user_for_api
from services.common.tokens import bearer_token, same_secret, token_digest

REPORTING_SCOPE = "reporting"

_API_TOKEN_BY_DIGEST = text("SELECT id, name FROM ingest.api_token "
                            "WHERE digest = :digest AND scope = :scope AND revoked_at IS NULL")


@dataclass(frozen=True)
class Reader:
    name: str
    kind: str                    # "admin" | "api_token" | "user"
    branch: str | None = None    # the branch key a manager (or staff tied to a branch) reads; None: every branch


def user_reader(user: StandingUser) -> Reader:
    return Reader(name=f"user:{user.username}", kind="user", branch=user.branch_key)


def identify(db_session: Session, settings: Settings, token: str) -> Reader | None:
    if same_secret(token, settings.admin_token.get_secret_value()):
        return Reader(name="admin", kind="admin")
    claims = verify_user_token(settings.secret_key.get_secret_value(), token, settings.user_token_ttl_seconds)
    if claims is not None:
        # The signature proves who the user was when the token was issued; the row says what they may do now.
        user = standing_user(db_session, claims.user_id, claims.username, claims.token_version)
        return user_reader(user) if user is not None else None
    row = db_session.execute(_API_TOKEN_BY_DIGEST, {"digest": token_digest(token), "scope": REPORTING_SCOPE}).first()
    return Reader(name=row.name, kind="api_token") if row is not None else None


def authenticate(db_session: Session) -> Reader:
    settings: Settings = current_app.extensions["cafeflow.settings"]
    token = bearer_token(request.headers.get("Authorization"))
    if token:
        reader = identify(db_session, settings, token)
    else:
        user = session_user_for_api(db_session)
        reader = user_reader(user) if user is not None else None
    if reader is None:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>' (a reporting token, an orders "
                       "user token or the admin token), or sign in at the dashboard; a token or session that is "
                       "unknown, expired, revoked or signed out is refused", headers={"WWW-Authenticate": "Bearer"})
    return reader
