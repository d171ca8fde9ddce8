"""index the day in an upload's file name, which the reporting coverage report looks up

Revision ID: 0002_upload_file_day_indexes
Revises: 0001_ingest_uploads
Create Date: 2026-11-22

Coverage finds the uploads of a date range by the day in their file names (DD-MM-YYYY or YYYY-MM-DD).
Without these indexes that is a regular expression over every upload ever posted, on each uncached
request: about 2 ms for 1,000 uploads, so ~200 ms after a year of files from hundreds of branches. The
expressions must stay identical to the ones in services/reporting/queries/coverage.py (a test checks the
planner can use them).
"""
from alembic import op

revision = "0002_upload_file_day_indexes"
down_revision = "0001_ingest_uploads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(r"""
    CREATE INDEX upload_file_day_dmy ON ingest.upload ((substring(filename FROM '\d{2}-\d{2}-\d{4}')));
    CREATE INDEX upload_file_day_iso ON ingest.upload ((substring(filename FROM '\d{4}-\d{2}-\d{2}')));
    """)


def downgrade() -> None:
    op.execute("DROP INDEX ingest.upload_file_day_dmy; DROP INDEX ingest.upload_file_day_iso;")
