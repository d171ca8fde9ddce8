"""/v1/auth/token (log in) and /v1/users (admins manage who may log in)."""
from __future__ import annotations

from flask import current_app, url_for
from flask_smorest import Blueprint
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.common.auth import UserClaims, issue_user_token
from services.common.errors import ApiError
from services.orders.auth import authenticate, password_login
from services.orders.models import AppUser
from services.orders.passwords import hash_password
from services.orders.permissions import BRANCH_REQUIRED, MANAGE_USERS, require
from services.orders.queries import field_error, get_or_404, page_of, resolve_branch
from services.orders.schemas import (
    PageArgs,
    TokenPublic,
    TokenRequest,
    UserCreate,
    UserPage,
    UserPublic,
    UserUpdate,
)
from services.orders.throttle import give_back_login_attempt

auth = Blueprint("auth", __name__, url_prefix="/v1/auth", description="Log in")
users = Blueprint("users", __name__, url_prefix="/v1/users", description="Who may log in (admins only)")


def _ctx():
    return current_app.extensions["cafeflow.db"], current_app.extensions["cafeflow.settings"]


def _user_public(u: AppUser) -> dict:
    return {"id": u.id, "username": u.username, "role": u.role, "branch": u.branch, "active": u.active,
            "created_at": u.created_at, "updated_at": u.updated_at}


@auth.route("/token", methods=["POST"])
@auth.doc(operationId="auth-token", summary="Exchange username and password for a bearer token")
@auth.arguments(TokenRequest)
@auth.response(200, TokenPublic)
@auth.alt_response(401, description="Wrong username or password")
@auth.alt_response(429, description="Too many login attempts for this account or from this address; see "
                                   "Retry-After")
def issue_token(data: dict):
    # services/orders/throttle.py has counted this attempt against the address and the account already.
    db, settings = _ctx()
    with db.session() as session:
        user = password_login(session, data["username"], data["password"])
    if user is None:
        raise ApiError(401, "unauthorized", "wrong username or password")
    give_back_login_attempt(current_app)
    token = issue_user_token(settings.secret_key.get_secret_value(),
                             UserClaims(user_id=user.id, username=user.username, role=user.role, branch=user.branch,
                                        token_version=user.token_version))
    return {"access_token": token, "token_type": "bearer", "expires_in": settings.user_token_ttl_seconds}


@auth.route("/logout", methods=["POST"])
@auth.doc(operationId="auth-logout", summary="End every token of the calling user (all devices)",
          security=[{"bearer": []}])
@auth.response(204)
def logout():
    db, settings = _ctx()
    with db.session() as session:
        principal = authenticate(session, settings)
        if principal.user_id is None:
            raise ApiError(400, "not_a_user", "the admin token is not a login; rotate CAFEFLOW_ADMIN_TOKEN instead")
        session.execute(update(AppUser).where(AppUser.id == principal.user_id)
                        .values(token_version=AppUser.token_version + 1))
        session.commit()
    return None


def create_user_record(session, *, username: str, password: str, role: str, branch: str | None) -> AppUser:
    """Shared by POST /v1/users and `cafeflow user add`; the caller commits."""
    _check_branch_for_role(role, branch)
    branch_name = branch_key = None
    if branch is not None:
        branch_name, branch_key = resolve_branch(session, branch, ["branch"])
    user = AppUser(username=username, password_hash=hash_password(password), role=role, branch=branch_name,
                   branch_key=branch_key)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        raise ApiError(409, "duplicate", "a user with this name exists") from None
    return user


def _check_branch_for_role(role: str, branch: str | None) -> None:
    if role in BRANCH_REQUIRED and branch is None:
        raise field_error(["branch"], f"a {role} runs one branch: name it (branch)")


@users.route("", methods=["POST"])
@users.doc(operationId="users-create", summary="Add a user", security=[{"bearer": []}])
@users.arguments(UserCreate)
@users.response(201, UserPublic)
def create_user(data: dict):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_USERS)
        user = create_user_record(session, **data)
        session.commit()
        return _user_public(user), 201, {"Location": url_for("users.get_user", user_id=user.id)}


@users.route("", methods=["GET"])
@users.doc(operationId="users-list", summary="List users", security=[{"bearer": []}])
@users.arguments(PageArgs, location="query")
@users.response(200, UserPage)
def list_users(args: dict):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_USERS)
        return page_of(session, select(AppUser).order_by(AppUser.id), args, _user_public)


@users.route("/<int:user_id>", methods=["GET"])
@users.doc(operationId="users-get", summary="One user", security=[{"bearer": []}])
@users.response(200, UserPublic)
def get_user(user_id: int):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_USERS)
        return _user_public(get_or_404(session, AppUser, user_id, "user"))


@users.route("/<int:user_id>", methods=["PATCH"])
@users.doc(operationId="users-update", summary="Change role, branch, password or deactivate a user",
           security=[{"bearer": []}])
@users.arguments(UserUpdate)
@users.response(200, UserPublic)
def update_user(data: dict, user_id: int):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_USERS)
        user = get_or_404(session, AppUser, user_id, "user")
        _check_branch_for_role(data.get("role", user.role), data["branch"] if "branch" in data else user.branch)
        if "password" in data:
            user.password_hash = hash_password(data["password"])
        if "branch" in data:
            user.branch, user.branch_key = (resolve_branch(session, data["branch"], ["branch"])
                                            if data["branch"] is not None else (None, None))
        for name in ("role", "active"):
            if name in data:
                setattr(user, name, data[name])
        session.commit()
        return _user_public(user)
