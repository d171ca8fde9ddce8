"""Who may read sales figures: the admin token, an API token with scope 'reporting'
(`cafeflow token add NAME --scope reporting`), or a signed user token from the orders service.
The token comes as a bearer header; the dashboard's browser instead sends the cookie of a server-side
session (services/common/sessions.py), created at its login from one of those tokens (never the admin
token). Either way every request re-checks what the credential stands for against the database."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.auth import standing_user, verify_user_token
from services.common.errors import ApiError
from services.common.sessions import SessionRecord, session_id_from_request, session_store
from services.common.settings import Settings
from services.common.tokens import bearer_token, same_secret, token_digest

REPORTING_SCOPE = "reporting"

_API_TOKEN_BY_DIGEST = text("SELECT id, name FROM ingest.api_token "
                            "WHERE digest = :digest AND scope = :scope AND revoked_at IS NULL")
_API_TOKEN_BY_ID = text("SELECT id, name FROM ingest.api_token "
                        "WHERE id = :id AND scope = :scope AND revoked_at IS NULL")


@dataclass(frozen=True)
class Reader:
    name: str
    kind: str                    # "admin" | "api_token" | "user"
    branch: str | None = None    # a staff user tied to one branch reads only that branch
    subject_id: int | None = None        # orders.app_user.id or ingest.api_token.id
    token_version: int | None = None     # the user's, when the credential was checked

    def session_record(self) -> SessionRecord:
        return SessionRecord(kind=self.kind, subject_id=self.subject_id, name=self.name, branch=self.branch,
                             token_version=self.token_version)


def _user(db_session: Session, user_id: int, username: str, token_version: int) -> Reader | None:
    # The signature proves who the user was when the token was issued; the row says what they may do now
    # (deactivated, demoted or moved users, a new password and a logout all end the token at once).
    user = standing_user(db_session, user_id, username, token_version)
    if user is None:
        return None
    return Reader(name=f"user:{username}", kind="user", branch=user.branch_key, subject_id=user_id,
                  token_version=token_version)


def identify(db_session: Session, settings: Settings, token: str) -> Reader | None:
    if same_secret(token, settings.admin_token.get_secret_value()):
        return Reader(name="admin", kind="admin")
    claims = verify_user_token(settings.secret_key.get_secret_value(), token, settings.user_token_ttl_seconds)
    if claims is not None:
        return _user(db_session, claims.user_id, claims.username, claims.token_version)
    row = db_session.execute(_API_TOKEN_BY_DIGEST, {"digest": token_digest(token), "scope": REPORTING_SCOPE}).first()
    return Reader(name=row.name, kind="api_token", subject_id=row.id) if row is not None else None


def identify_session(db_session: Session, record: SessionRecord) -> Reader | None:
    """The reader a dashboard session stands for, if it still stands for anyone."""
    if record.kind == "user":
        return _user(db_session, record.subject_id, record.name.removeprefix("user:"), record.token_version)
    if record.kind == "api_token":
        row = db_session.execute(_API_TOKEN_BY_ID, {"id": record.subject_id, "scope": REPORTING_SCOPE}).first()
        return Reader(name=row.name, kind="api_token", subject_id=row.id) if row is not None else None
    return None


def session_reader(db_session: Session) -> Reader | None:
    record = session_store(current_app).read(session_id_from_request())
    return identify_session(db_session, record) if record is not None else None


def authenticate(db_session: Session) -> Reader:
    settings: Settings = current_app.extensions["cafeflow.settings"]
    token = bearer_token(request.headers.get("Authorization"))
    if token:
        reader = identify(db_session, settings, token)
    elif session_id_from_request():
        reader = session_reader(db_session)
    else:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>' (a reporting token, an orders "
                       "user token or the admin token)", headers={"WWW-Authenticate": "Bearer"})
    if reader is None:
        raise ApiError(401, "unauthorized", "the token or session is unknown, expired, revoked, signed out or "
                       "lacks the reporting scope", headers={"WWW-Authenticate": "Bearer"})
    return reader
