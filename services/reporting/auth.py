"""Who may read sales figures: the admin token, an API token with scope 'reporting'
(`cafeflow token add NAME --scope reporting`), or a signed user token from the orders service.
The token comes as a bearer header, or from the dashboard's session cookie (set by its login form)."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request, session
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.auth import verify_user_token
from services.common.errors import ApiError
from services.common.settings import Settings
from services.common.tokens import bearer_token, same_secret, token_digest

REPORTING_SCOPE = "reporting"
SESSION_TOKEN = "token"


@dataclass(frozen=True)
class Reader:
    name: str
    kind: str                    # "admin" | "api_token" | "user"
    branch: str | None = None    # a staff user tied to one branch reads only that branch


def identify(db_session: Session, settings: Settings, token: str) -> Reader | None:
    if same_secret(token, settings.admin_token.get_secret_value()):
        return Reader(name="admin", kind="admin")
    claims = verify_user_token(settings.secret_key.get_secret_value(), token, settings.user_token_ttl_seconds)
    if claims is not None:
        # The signature proves who the user was when the token was issued; the row says what they may do
        # now (deactivated, demoted or moved users lose access at once, as they do in orders).
        user = db_session.execute(text("SELECT active, role, branch_key FROM orders.app_user WHERE id = :id"),
                                  {"id": claims.user_id}).first()
        if user is None or not user.active:
            return None
        branch = user.branch_key if user.role != "admin" else None
        return Reader(name=f"user:{claims.username}", kind="user", branch=branch)
    name = db_session.execute(text(
        "SELECT name FROM ingest.api_token WHERE digest = :digest AND scope = :scope AND revoked_at IS NULL"),
        {"digest": token_digest(token), "scope": REPORTING_SCOPE}).scalar()
    return Reader(name=name, kind="api_token") if name is not None else None


def authenticate(db_session: Session) -> Reader:
    settings: Settings = current_app.extensions["cafeflow.settings"]
    token = bearer_token(request.headers.get("Authorization")) or session.get(SESSION_TOKEN)
    if not token:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>' (a reporting token, an orders "
                       "user token or the admin token)", headers={"WWW-Authenticate": "Bearer"})
    reader = identify(db_session, settings, token)
    if reader is None:
        raise ApiError(401, "unauthorized", "the token is unknown, expired, revoked or lacks the reporting scope",
                       headers={"WWW-Authenticate": "Bearer"})
    return reader
