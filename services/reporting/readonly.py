"""Every reporting query runs as the read-only role `cafeflow_reporting`, in read-only transactions.

Why `SET ROLE` on connect rather than a second login URL: the service keeps one `DATABASE_URL` (no extra
secret to provision or rotate), yet each pooled connection is switched, before first use, to a NOLOGIN
role that holds only SELECT on the warehouse and on the few ingest columns coverage and token checks
read (warehouse migration 0002 grants them, with default privileges for future warehouse tables). On
top of that `default_transaction_read_only` makes PostgreSQL refuse any write before privileges are
even checked. Two independent locks: a write needs both a read-write transaction and a privilege the
role does not have. The remaining trust is that our own SQL never runs `RESET ROLE`; every statement
is a fixed text with bound parameters, so request data cannot add one. Deployments that want the
database itself to enforce even that can point DATABASE_URL of this service at a login role that is
a member of `cafeflow_reporting` only: the same SET ROLE then still works.
"""
from __future__ import annotations

from sqlalchemy import Engine, event


def make_read_only(engine: Engine, *, role: str, statement_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _as_reporting_role(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        # role is validated by the settings pattern; identifiers cannot be bound parameters.
        cursor.execute(f'SET ROLE "{role}"')
        cursor.execute("SET default_transaction_read_only = on")
        cursor.execute("SET statement_timeout = %s", (int(statement_timeout_ms),))
        cursor.close()
        dbapi_connection.commit()
