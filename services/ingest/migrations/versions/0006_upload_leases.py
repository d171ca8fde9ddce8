"""a worker loading an upload holds a lease on it, renewed while it loads

`ingest.upload_lease`: one row per upload being loaded, naming its holder (the Celery task id, which a retry of
the same task keeps) and when the lease runs out. The worker renews it every quarter of UPLOAD_LEASE_SECONDS
from a thread while it loads, and deletes it in the transaction that finishes the upload. Beat's sweeper
re-queues a `processing` upload whose lease ran out: its worker died (SIGKILL, OOM, a lost node), so recovery
takes about a lease and a sweep instead of waiting for an age limit.

A table of its own, not columns of `ingest.upload`: the load holds the upload's row lock for its whole
transaction (a retraction waits on it), so an UPDATE of that row from the renewing thread would wait for the
very load it vouches for. Renewals change only `expires_at`, so the foreign key takes no lock on the upload.

Revision ID: 0006_upload_leases
Revises: 0005_rejection_rows
Create Date: 2026-12-03
"""
from alembic import op

revision = "0006_upload_leases"
down_revision = "0005_rejection_rows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE ingest.upload_lease (
        upload_id bigint PRIMARY KEY REFERENCES ingest.upload (id) ON DELETE CASCADE,
        holder text NOT NULL,
        expires_at timestamptz NOT NULL
    );
    -- The sweeper's lost-message pass asks for queued uploads by when they were last sent.
    CREATE INDEX upload_queued_enqueued_idx ON ingest.upload (enqueued_at) WHERE status = 'queued';
    """)


def downgrade() -> None:
    op.execute("DROP INDEX ingest.upload_queued_enqueued_idx; DROP TABLE ingest.upload_lease;")
