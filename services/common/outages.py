"""What every service answers when a dependency does not: a database or broker that cannot be reached, a pool
with no free connection, a statement stopped by its timeout. None of these is an internal error: the request was
fine and the same request will work once the dependency answers again, so the client gets 503 in the JSON error
shape with Retry-After (the upload client, a BI tool and the pages wait and try again), not 500.

`outage_of(exc)` is the one classification; services/common/errors.py answers with it on every endpoint of every
service, and the sign-in code (services/common/signin.py, services/orders/auth.py) uses `database_unreachable`.
"""
from __future__ import annotations

from dataclasses import dataclass

import kombu.exceptions
import redis
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# Long enough for PostgreSQL's fast restart or a Redis restart, short enough that a waiting client notices
# recovery within seconds; `cafeflow upload` waits this long between tries (its --patience bounds the total).
RETRY_AFTER_SECONDS = 5

# SQLSTATEs of a server that is going away or not there yet: admin shutdown, crash shutdown, cannot connect now.
_SERVER_GOING_AWAY = ("57P01", "57P02", "57P03")
QUERY_CANCELED = "57014"     # statement_timeout (or a cancel by an operator)


@dataclass(frozen=True)
class Outage:
    code: str
    message: str
    retry_after: int = RETRY_AFTER_SECONDS
    status: int = 503

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def _pgcode(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "pgcode", None)


def database_unreachable(exc: BaseException) -> bool:
    """PostgreSQL cannot be reached (refused, dropped, shutting down, starting up), as opposed to a statement
    it refused (those carry another SQLSTATE and stay errors of the request)."""
    if isinstance(exc, PoolTimeout):
        return False
    return isinstance(exc, DBAPIError) and (exc.connection_invalidated or (
        isinstance(exc, (OperationalError, InterfaceError)) and _pgcode(exc) in (None, *_SERVER_GOING_AWAY)))


def broker_unreachable(exc: BaseException) -> bool:
    """Redis (the broker, the sessions, the throttle) cannot be reached or did not answer in time."""
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError))


def statement_timed_out(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and _pgcode(exc) == QUERY_CANCELED


def outage_of(exc: BaseException, *, statement_timeout_ms: int | None = None) -> Outage | None:
    """The 503 a request that failed with `exc` gets, or None when `exc` is not an outage (a real error)."""
    if database_unreachable(exc):
        return Outage("database_unavailable", "the database does not answer for a moment (restarting or "
                                              "unreachable); nothing was lost: try again shortly")
    if isinstance(exc, PoolTimeout):
        return Outage("database_busy", "every database connection of this service is busy; try again shortly")
    if statement_timed_out(exc):
        limit = f"{statement_timeout_ms / 1000:g} s" if statement_timeout_ms else "its time limit"
        return Outage("statement_timeout", f"the request took longer than {limit} in the database and was "
                                           "stopped; ask for less (a shorter date range, fewer branches) or try "
                                           "again when the service is less busy")
    if broker_unreachable(exc):
        return Outage("broker_unavailable", "the queue and session store (Redis) do not answer for a moment; "
                                            "try again shortly")
    return None
