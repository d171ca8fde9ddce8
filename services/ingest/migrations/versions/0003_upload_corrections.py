"""uploads can replace branch-days and be retracted

- `mode`: `append` (the default: the file's sales are added, duplicates skipped) or `replace` (the file is the
  complete record of every branch-day it covers: the sales earlier files gave those branch-days and this one
  lacks are retracted when it loads). The same bytes posted in the other mode are another upload.
- `retracted`: a new status. An admin or the posting branch asks (`retract_requested_*`, with a reason); the
  transform retracts the upload's sales that no other standing upload contains (`rows_retracted`) and sets
  `retracted_at`. A retracted upload stays listed (the audit trail) and no longer counts as "these bytes were
  posted before": the same file posted again is a new upload that loads again.
- `rows_retracted` also counts, for a replacing upload, the earlier sales it retracted.

Revision ID: 0003_upload_corrections
Revises: 0002_upload_file_day_indexes
Create Date: 2026-12-03
"""
from alembic import op

revision = "0003_upload_corrections"
down_revision = "0002_upload_file_day_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE ingest.upload
        ADD COLUMN mode text NOT NULL DEFAULT 'append' CONSTRAINT upload_mode_known CHECK (mode IN ('append', 'replace')),
        ADD COLUMN rows_retracted integer NOT NULL DEFAULT 0,
        ADD COLUMN retract_requested_at timestamptz,
        ADD COLUMN retract_requested_by text,
        ADD COLUMN retract_reason text,
        ADD COLUMN retracted_at timestamptz;
    ALTER TABLE ingest.upload DROP CONSTRAINT upload_status_known;
    ALTER TABLE ingest.upload ADD CONSTRAINT upload_status_known
        CHECK (status IN ('queued', 'processing', 'loaded', 'failed', 'retracted'));
    DROP INDEX ingest.upload_sha256_poster_key;
    CREATE UNIQUE INDEX upload_sha256_poster_mode_key ON ingest.upload (sha256, poster_key, mode)
        WHERE status <> 'retracted';
    -- The sweeper resends retractions whose message was lost.
    CREATE INDEX upload_retract_pending_idx ON ingest.upload (retract_requested_at)
        WHERE retract_requested_at IS NOT NULL AND retracted_at IS NULL;
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX ingest.upload_retract_pending_idx;
    DROP INDEX ingest.upload_sha256_poster_mode_key;
    DELETE FROM ingest.upload WHERE status = 'retracted' OR mode = 'replace';
    CREATE UNIQUE INDEX upload_sha256_poster_key ON ingest.upload (sha256, poster_key);
    ALTER TABLE ingest.upload DROP CONSTRAINT upload_status_known;
    ALTER TABLE ingest.upload ADD CONSTRAINT upload_status_known
        CHECK (status IN ('queued', 'processing', 'loaded', 'failed'));
    ALTER TABLE ingest.upload DROP COLUMN retracted_at, DROP COLUMN retract_reason, DROP COLUMN retract_requested_by,
        DROP COLUMN retract_requested_at, DROP COLUMN rows_retracted, DROP COLUMN mode;
    """)
