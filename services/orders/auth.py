"""Who is calling: a logged-in user (signed token from POST /v1/auth/token) or the admin token (ops
automation). Staff tied to a branch see and change only that branch's orders."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from flask import current_app, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.auth import verify_user_token
from services.common.errors import ApiError
from services.common.settings import Settings
from services.common.tokens import bearer_token, same_secret
from services.orders.models import AppUser

log = logging.getLogger(__name__)


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
    # One primary-key read per request: a deactivated user or a changed role takes effect at once,
    # not when the token expires.
    user = session.execute(select(AppUser.role, AppUser.branch, AppUser.branch_key, AppUser.active, AppUser.username)
                           .where(AppUser.id == claims.user_id)).first()
    if user is None or not user.active:
        raise _unauthorized("the user is unknown or deactivated")
    return Principal(user_id=claims.user_id, username=user.username, role=user.role, branch=user.branch,
                     branch_key=user.branch_key)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "only admins manage products, couriers and users")


class LoginThrottle:
    """Slows down password guessing, per client address, in Redis (shared by every gunicorn worker and
    replica): each failed login INCRs `orders:login-failures:<address>`, whose TTL starts at the first
    failure of a window (LOGIN_FAILURE_WINDOW_SECONDS). Once LOGIN_MAX_FAILURES are counted, every login
    from that address is answered 429 with Retry-After = the key's remaining TTL, before the password
    is checked (so it costs no scrypt time either). A success clears the count. If Redis is unreachable
    logins are not throttled (logged): staff must still be able to work during a Redis outage."""

    PREFIX = "orders:login-failures:"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)

    def _key(self, address: str) -> str:
        return self.PREFIX + address

    def refuse_if_blocked(self, address: str) -> None:
        try:
            failures = self.client.get(self._key(address))
            if failures is None or int(failures) < self.settings.login_max_failures:
                return
            retry_after = max(1, self.client.ttl(self._key(address)))
        except redis.RedisError as exc:
            log.warning("login throttle unavailable", extra={"error": type(exc).__name__})
            return
        raise ApiError(429, "too_many_requests", "too many failed logins from this address; wait and try again",
                       {"retry_after_seconds": retry_after}, headers={"Retry-After": str(retry_after)})

    def failed(self, address: str) -> None:
        try:
            pipe = self.client.pipeline()
            pipe.incr(self._key(address))
            pipe.expire(self._key(address), self.settings.login_failure_window_seconds, nx=True)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("login throttle unavailable", extra={"error": type(exc).__name__})

    def succeeded(self, address: str) -> None:
        try:
            self.client.delete(self._key(address))
        except redis.RedisError:
            pass


def client_address() -> str:
    return request.remote_addr or "unknown"


def login_throttle() -> LoginThrottle:
    return current_app.extensions["cafeflow.login_throttle"]
