"""Password guessing is throttled per client address AND per account, with Flask-Limiter (its `limits`
storage counts in Redis with one Lua INCR+EXPIRE, so every gunicorn thread, worker and replica shares one
atomic count).

Every attempt takes a slot from both counters *before* the password is checked: of 40 parallel wrong
logins at most LOGIN_MAX_FAILURES are checked, the rest answer 429 (Flask-Limiter's own `deduct_when`
would test first and count after the response, which lets parallel guesses through). A login that
succeeds gives back only the slots it took itself, so it never clears anyone's count: "4 wrong guesses
for ann, 1 right login as sam, repeat" is stopped at the 5th wrong guess. The windows are fixed
(LOGIN_FAILURE_WINDOW_SECONDS, starting at the first counted attempt); Retry-After says when the
breached one ends.

The sign-in form (POST /signin) and the token endpoint (POST /v1/auth/token) check the same passwords, so
they share one count per address and one per account: switching between them buys no extra guesses.

The account is counted under a digest of its lower-cased name (no usernames in Redis keys), so guessing one
account from many addresses stops too. The price is that anyone can keep one account throttled by
guessing wrong: that user waits for the window, or an admin sets a new password (which does not reset
the count either; it only makes the guesses pointless).

Redis down: the same limits are counted in the memory of each gunicorn worker (Flask-Limiter's in-memory
fallback) until Redis answers again. Token logins keep working, which scripts and the API's users need during
a Redis outage (the orders API itself does not need Redis), and guessing stays bounded, per worker process
instead of per deployment. Refusing every login instead (fail closed) would turn a Redis outage into an
outage of the API. The sign-in form cannot work without Redis anyway (its session lives there): it answers
a 503 page.
"""
from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping

from flask import Blueprint, Flask, request
from flask_limiter import Limiter, RateLimitExceeded

from services.common.errors import error_response
from services.common.metrics import LOGINS
from services.common.settings import Settings

LOGIN_LIMITER = "cafeflow.login_limiter"


def client_address() -> str:
    """The peer address, or the client's as forwarded by TRUSTED_PROXIES proxies (ProxyFix)."""
    return request.remote_addr or "unknown"


def login_account() -> str:
    """The account a login names (JSON body or sign-in form), as a digest; malformed bodies share one key."""
    body = request.get_json(silent=True) if request.is_json else request.form
    username = body.get("username") if isinstance(body, Mapping) else None
    # Folded as the login looks the user up (case-insensitive, stripped).
    folded = username.strip().lower() if isinstance(username, str) else ""
    return hashlib.sha256(folded.encode()).hexdigest()[:32]


def register_login_throttle(app: Flask, settings: Settings, blueprints: list[Blueprint],
                            login_endpoints: set[str]) -> Limiter:
    """Both limits, shared by `login_endpoints` (of `blueprints`), in this app's own Limiter (the blueprints'
    other routes, such as logout or the sign-in form's GET, are not counted)."""
    limit = f"{settings.login_max_failures} per {settings.login_failure_window_seconds} seconds"
    limiter = Limiter(
        key_func=client_address, storage_uri=settings.redis_url, strategy="fixed-window",
        key_prefix="orders-login", in_memory_fallback_enabled=True, headers_enabled=False,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1})
    for blueprint in blueprints:
        limiter.shared_limit(limit, scope="address", key_func=client_address)(blueprint)
        limiter.shared_limit(limit, scope="account", key_func=login_account)(blueprint)
    limiter.request_filter(lambda: request.endpoint not in login_endpoints)
    limiter.init_app(app)
    app.extensions[LOGIN_LIMITER] = limiter

    @app.errorhandler(RateLimitExceeded)
    def _too_many_logins(_exc: RateLimitExceeded):
        LOGINS.labels("throttled").inc()
        retry_after = login_retry_after(app, settings)
        return error_response(429, "too_many_requests", "too many login attempts for this account or from this "
                              "address; wait and try again", {"retry_after_seconds": retry_after},
                              headers={"Retry-After": str(retry_after)})
    return limiter


def login_retry_after(app: Flask, settings: Settings) -> int:
    """Seconds until the breached limit's window ends (for a refused login's Retry-After)."""
    limiter: Limiter = app.extensions[LOGIN_LIMITER]
    now = time.time()
    ends = [lim.window.reset_time for lim in limiter.current_limits if lim.breached]
    return min(settings.login_failure_window_seconds, max([math.ceil(end - now) for end in ends] + [1]))


def give_back_login_attempt(app: Flask) -> None:
    """A successful login returns the slots it took, and only those."""
    limiter: Limiter = app.extensions[LOGIN_LIMITER]
    for taken in limiter.current_limits:
        try:
            limiter.limiter.storage.incr(taken.key, taken.limit.get_expiry(), amount=-1)
        except limiter.storage.base_exceptions:
            pass    # Redis went away after the check: the slot stays taken until the window ends
