"""uploads can replace branch-days and be retracted

- `mode`: `append` (the default: the file's sales are added, duplicates skipped) or `replace` (the file is the
  complete record of every branch-day it covers: the sales earlier files gave those branch-days and this one
  lacks are retracted when it loads).
- `retracted`: a new status. An admin or the posting branch asks (`retract_requested_*`, with a reason); the
  transform retracts the upload's sales that no other standing upload contains (`rows_retracted`) and sets
  `retracted_at`. A retracted upload stays listed (the audit trail).
- `rows_retracted` also counts, for a replacing upload, the earlier sales it retracted.

"These bytes were posted before" stays decided by the unique (sha256, poster_key), so ingest pods of the
previous release keep working during a rolling upgrade (expand, deploy, contract): the new code puts the mode
into poster_key (`admin replace`: the same bytes posted to replace are another upload than when appended), and
a retraction renames it (`admin retracted 17`), so the same file posted again is a new upload that loads again.

Revision ID: 0004_upload_corrections
Revises: 0003_extra_field_allowlist
Create Date: 2026-12-03
"""
from alembic import op

revision = "0004_upload_corrections"
down_revision = "0003_extra_field_allowlist"
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
    -- The sweeper resends retractions whose message was lost.
    CREATE INDEX upload_retract_pending_idx ON ingest.upload (retract_requested_at)
        WHERE retract_requested_at IS NOT NULL AND retracted_at IS NULL;
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX ingest.upload_retract_pending_idx;
    UPDATE ingest.upload SET status = 'failed', error = 'retracted (migration 0004 downgraded)'
    WHERE status = 'retracted';
    ALTER TABLE ingest.upload DROP CONSTRAINT upload_status_known;
    ALTER TABLE ingest.upload ADD CONSTRAINT upload_status_known
        CHECK (status IN ('queued', 'processing', 'loaded', 'failed'));
    ALTER TABLE ingest.upload DROP COLUMN retracted_at, DROP COLUMN retract_reason, DROP COLUMN retract_requested_by,
        DROP COLUMN retract_requested_at, DROP COLUMN rows_retracted, DROP COLUMN mode;
    """)
