"""An upload's states, the moves allowed between them, and the SQL that makes a move: every write of
`ingest.upload.status` (ingest, the transform's claim, load, failure, re-queue and retraction, the sweeper, the
admin CLI) goes through this module, as order statuses go through services/orders/workflow.py.

    queued ──claim──> processing ──load──> loaded
      │  ^               │  │                │
      │  └──re-queue─────┘  └──fail──> failed │        (re-queue: lease lapsed, rest of a failed batch, retry
      │                                 │     │         of a failed or stuck upload; a loaded one never)
      │                                 │     │
      └───────────────> retracted <─────┴─────┘        (a retraction; nothing leaves `retracted`)

A move is one guarded UPDATE: the row changes only if it is in a state the move may start from, so a move that
raced another (a load finishing while the sweeper re-queues, two retractions) changes nothing instead of
undoing it. `move` refuses (IllegalUploadMove) when the one upload it names is in any other state;
`transition` is the same statement for a set of uploads, which leaves the others as they are.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

QUEUED = "queued"            # stored and waiting for a worker (its message is, or will be, in the queue)
PROCESSING = "processing"    # claimed by a worker, which holds a lease on it while it loads
LOADED = "loaded"            # its sales are in the warehouse (counts say how many)
FAILED = "failed"            # will not load as it is (the error says why); posting or retrying queues it again
RETRACTED = "retracted"      # taken back: its sales left the warehouse (except those another upload has)

STATUSES = (QUEUED, PROCESSING, LOADED, FAILED, RETRACTED)
INITIAL = QUEUED
UNFINISHED = (QUEUED, PROCESSING)          # a worker will still do something with it

TRANSITIONS: dict[str, tuple[str, ...]] = {
    # claimed; or given up on (the database stayed unreachable through every try); or retracted unloaded
    QUEUED: (PROCESSING, FAILED, RETRACTED),
    # loaded or failed by its holder; re-queued when its holder's lease lapsed (or by an admin's retry);
    # re-claimed by its own holder's retry; retracted after its holder died
    PROCESSING: (LOADED, FAILED, QUEUED, PROCESSING, RETRACTED),
    # never loaded again: a replacing upload replayed would take away sales posted after it (retract it and
    # post the file again instead)
    LOADED: (RETRACTED,),
    FAILED: (QUEUED, RETRACTED),
    RETRACTED: (),
}


class IllegalUploadMove(Exception):
    """A move the table above does not allow (or of an upload that does not exist)."""

    def __init__(self, upload_id: int, current: str | None, to: str) -> None:
        what = f"upload {upload_id} is {current}" if current else f"there is no upload {upload_id}"
        super().__init__(f"{what}: it cannot become {to}")
        self.upload_id, self.current, self.to = upload_id, current, to


def sources(to: str) -> tuple[str, ...]:
    """The states from which an upload may move to `to`."""
    if to not in TRANSITIONS:
        raise ValueError(f"unknown upload state {to!r}")
    return tuple(state for state in STATUSES if to in TRANSITIONS[state])


def sql_list(states: tuple[str, ...] | list[str]) -> str:
    """States as an SQL list literal, `('queued', 'processing')`: only ever our own constants."""
    unknown = set(states) - set(STATUSES)
    if unknown or not states:
        raise ValueError(f"not upload states: {sorted(unknown) or states}")
    return "(" + ", ".join(f"'{state}'" for state in states) + ")"


def assignment(to: str) -> str:
    """The SET part of a move (for a statement that must be written out whole, such as the load's finish)."""
    sources(to)
    return f"status = '{to}', updated_at = now()"


def guard(to: str, alias: str | None = None) -> str:
    """The WHERE part that keeps a move legal: the row is in one of the states it may start from."""
    column = f"{alias}.status" if alias else "status"
    return f"{column} IN {sql_list(sources(to))}"


def transition(to: str, *, assign: str = "", where: str = "id = :id", returning: str = "id") -> TextClause:
    """UPDATE of the uploads `where` selects that are in a state allowing the move to `to`; `assign` adds
    columns to set (error, attempts, ...). The others are left as they are."""
    extra = f", {assign}" if assign else ""
    return text(f"UPDATE ingest.upload SET {assignment(to)}{extra} WHERE {guard(to)} AND ({where}) "
                f"RETURNING {returning}")


def move(session: Session, upload_id: int, to: str, *, assign: str = "", params: dict | None = None,
         returning: str = "id") -> Row:
    """Moves one upload to `to` inside the caller's transaction (the caller commits); refuses with
    IllegalUploadMove, changing nothing, when the upload is not in a state that allows it."""
    moved = session.execute(transition(to, assign=assign, returning=returning),
                            {**(params or {}), "id": upload_id}).first()
    if moved is None:
        current = session.execute(text("SELECT status FROM ingest.upload WHERE id = :id"), {"id": upload_id}).scalar()
        raise IllegalUploadMove(upload_id, current, to)
    return moved
