"""allow-list of unknown JSON fields whose free text the warehouse keeps (`cafeflow fields allow`)

Revision ID: 0003_extra_field_allowlist
Revises: 0002_upload_file_day_indexes
Create Date: 2026-12-03

Unknown JSON fields keep their names, types, numbers, booleans and short codes; free text only for the
fields named here (issue 11). It lives in schema ingest beside the branch registry and the tokens: admin
settings that decide what a load accepts, read by the worker at each load. The warehouse schema is the BI
tools' public interface and holds sales, not pipeline configuration; the read-only reporting role gets no
grant on this table.
"""
from alembic import op

revision = "0003_extra_field_allowlist"
down_revision = "0002_upload_file_day_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE ingest.extra_field_allowed (
        path text PRIMARY KEY CHECK (length(path) BETWEEN 1 AND 200),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    COMMENT ON TABLE ingest.extra_field_allowed IS
        'unknown JSON fields (dotted paths, e.g. loyalty.note) whose free text the warehouse keeps';
    """)


def downgrade() -> None:
    op.execute("DROP TABLE ingest.extra_field_allowed")
