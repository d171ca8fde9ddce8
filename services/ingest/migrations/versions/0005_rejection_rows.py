"""a rejection can stand for several rows of its file

`rows` (default 1): how many rows of the file one rejection stands for. Rows for another registered branch than
the upload's are one mistake of the file ("this file is for Birmingham; this upload is for Leeds"), reported once
per file and foreign branch at its first line, with their count here; every other rejection is one row.
`upload.rows_rejected` still counts rows, so it is the sum of `rows` over the upload's rejections.

Revision ID: 0005_rejection_rows
Revises: 0004_upload_corrections
Create Date: 2026-12-03
"""
from alembic import op

revision = "0005_rejection_rows"
down_revision = "0004_upload_corrections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE ingest.upload_rejection ADD COLUMN rows integer NOT NULL DEFAULT 1 "
               "CONSTRAINT upload_rejection_rows_positive CHECK (rows >= 1)")


def downgrade() -> None:
    op.execute("ALTER TABLE ingest.upload_rejection DROP COLUMN rows")
