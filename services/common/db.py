"""Engine and session handling shared by every service.

Query helpers never commit: the request handler or the task commits once.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


class Base(DeclarativeBase):
    pass


@dataclass
class SqlStats:
    count: int = 0
    seconds: float = 0.0


# Per request / per task SQL statistics, filled by engine events (for the access log and metrics).
sql_stats: ContextVar[SqlStats | None] = ContextVar("sql_stats", default=None)


def _track_sql(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        conn.info.setdefault("query_start", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        started = conn.info["query_start"].pop()
        stats = sql_stats.get()
        if stats is not None:
            stats.count += 1
            stats.seconds += time.perf_counter() - started


class Database:
    def __init__(self, url: str, *, application_name: str = "cafeflow", pool_size: int = 5,
                 statement_timeout_ms: int | None = None) -> None:
        connect_args = {"application_name": application_name}
        if statement_timeout_ms:
            connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
        self.engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=10,
            connect_args=connect_args,
            # A database error's text must not quote the row it failed on (names, card digits, payloads):
            # exceptions reach logs and Celery's task results.
            hide_parameters=True,
        )
        _track_sql(self.engine)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self.sessionmaker()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose_after_fork(self) -> None:
        # A forked worker must not share the parent's sockets.
        self.engine.dispose(close=False)
