"""The upload contract shared by ingest (creates uploads) and transform (claims, loads, reports).

Tables live in schema `ingest`; their migrations are in services/ingest/migrations.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.common import upload_states
from services.common.db import Base

UPLOAD_MODES = ("append", "replace")
# What became of a finished upload's rows, in one word (`upload_outcome`); the status says where it is.
UPLOAD_OUTCOMES = ("clean", "partial", "all_rejected", "all_duplicate", "failed")


def poster_key(poster: str, mode: str) -> str:
    """What makes two posts of the same bytes one upload (unique with sha256): the same poster ('admin' or
    'branch:<id>') and mode. A retraction appends ' retracted <id>' (services/transform/corrections.py), so the
    same file posted again is a new upload."""
    return poster if mode == "append" else f"{poster} {mode}"


def upload_outcome(status: str, rows_loaded: int, rows_rejected: int, rows_duplicate: int) -> str | None:
    """The outcome of an upload's load, from the counts its row keeps; None while it waits or loads.

    - `clean`: every row was taken, and some were new (rows already loaded may be among them);
    - `partial`: some rows were taken (new or already loaded), some rejected;
    - `all_rejected`: every row was rejected; nothing of the file is in the warehouse;
    - `all_duplicate`: every row was already in the warehouse (the file, or its days, were sent before);
    - `failed`: the file could not be loaded at all (`error` says why).
    A retracted upload keeps the outcome of its load (its status says its sales left again).
    "loaded" with 0 rows loaded read as success; these say what happened."""
    if status == "failed":
        return "failed"
    taken = rows_loaded + rows_duplicate
    if status not in ("loaded", "retracted") or taken + rows_rejected == 0:
        return None
    if rows_rejected:
        return "partial" if taken else "all_rejected"
    return "clean" if rows_loaded else "all_duplicate"


def upload_summary(status: str, rows_loaded: int, rows_rejected: int, rows_duplicate: int,
                   error: str | None = None) -> str:
    """The upload in a sentence a branch manager reads without help (the portal shows it as it is)."""
    if status in ("queued", "processing"):
        return "Waiting to be loaded." if status == "queued" else "Loading."
    if status == "failed":
        return f"Not loaded: {error}" if error else "Not loaded."
    counts = f"loaded {rows_loaded}, already had {rows_duplicate}, rejected {rows_rejected}"
    lead = {"clean": "Every row taken", "partial": "Some rows rejected",
            "all_rejected": "Nothing loaded: every row was rejected",
            "all_duplicate": "Nothing new: every sale was already in"}.get(
                upload_outcome(status, rows_loaded, rows_rejected, rows_duplicate) or "", "Loaded")
    tail = " Retracted since: its sales were taken out again." if status == "retracted" else ""
    return f"{lead} ({counts}).{tail}"


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class Branch(TimestampMixin, Base):
    __tablename__ = "branch"
    __table_args__ = {"schema": "ingest"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    branch_key: Mapped[str] = mapped_column(Text, unique=True)


class ApiToken(TimestampMixin, Base):
    __tablename__ = "api_token"
    __table_args__ = {"schema": "ingest"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    digest: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    scope: Mapped[str] = mapped_column(Text)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest.branch.id"), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Upload(TimestampMixin, Base):
    __tablename__ = "upload"
    __table_args__ = (
        CheckConstraint(f"status IN {upload_states.sql_list(upload_states.STATUSES)}", name="upload_status_known"),
        {"schema": "ingest"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    poster_key: Mapped[str] = mapped_column(Text)
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(Text, nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest.branch.id"), nullable=True)
    # Set for a branch token: rows for any other branch are rejected.
    expected_branch_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_by: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=upload_states.INITIAL)
    rows_loaded: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_duplicate: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    dialect: Mapped[str | None] = mapped_column(Text, nullable=True)
    extra_fields: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    # Branches the file's loaded rows were for (set by the transform); an admin backfill has no
    # poster branch, so this is what `?branch=` finds it by.
    file_branch_keys: Mapped[list[str] | None] = mapped_column(ARRAY(Text), nullable=True)
    # "append" adds the file's sales; "replace" makes the file the whole record of the branch-days it covers.
    mode: Mapped[str] = mapped_column(Text, server_default="append")
    rows_retracted: Mapped[int] = mapped_column(Integer, server_default="0")
    retract_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retract_requested_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    retract_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    retracted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    raw_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UploadRejection(Base):
    __tablename__ = "upload_rejection"
    __table_args__ = {"schema": "ingest"}

    upload_id: Mapped[int] = mapped_column(ForeignKey("ingest.upload.id", ondelete="CASCADE"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    # The row as received, with customer name and card number masked.
    masked_row: Mapped[str] = mapped_column(Text)
    # Rows of the file this rejection stands for: more than 1 for a file's rows for another branch (migration 0005).
    rows: Mapped[int] = mapped_column(Integer, server_default="1")


class ExtraFieldAllowed(Base):
    """An unknown JSON field (dotted path: `loyalty.note`) whose free text the warehouse keeps; every other
    unknown field keeps only numbers, booleans and short codes (`cafeflow fields allow`, issue 11)."""
    __tablename__ = "extra_field_allowed"
    __table_args__ = {"schema": "ingest"}

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
