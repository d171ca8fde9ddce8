"""ingest schema: branches, api tokens, uploads, encrypted raw chunks, rejections

Revision ID: 0001_ingest_uploads
Revises:
Create Date: 2026-11-22
"""
from alembic import op

revision = "0001_ingest_uploads"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE ingest.branch (
        id          serial PRIMARY KEY,
        name        text NOT NULL,
        branch_key  text NOT NULL UNIQUE,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE ingest.api_token (
        id          serial PRIMARY KEY,
        name        text NOT NULL,
        digest      bytea NOT NULL UNIQUE,
        scope       text NOT NULL,
        branch_id   integer REFERENCES ingest.branch(id),
        revoked_at  timestamptz,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE ingest.upload (
        id                  bigserial PRIMARY KEY,
        sha256              varchar(64) NOT NULL,
        -- Who posted it: 'admin' or 'branch:<id>'. The same bytes from the same poster are one upload;
        -- from another poster they are another upload (whose rows are then duplicates or rejections).
        poster_key          text NOT NULL,
        filename            text NOT NULL,
        content_type        text,
        size_bytes          bigint NOT NULL,
        chunk_count         integer NOT NULL,
        branch_id           integer REFERENCES ingest.branch(id),
        expected_branch_key text,
        submitted_by        text NOT NULL,
        status              text NOT NULL DEFAULT 'queued'
                            CONSTRAINT upload_status_known
                            CHECK (status IN ('queued', 'processing', 'loaded', 'failed')),
        rows_loaded         integer NOT NULL DEFAULT 0,
        rows_rejected       integer NOT NULL DEFAULT 0,
        rows_duplicate      integer NOT NULL DEFAULT 0,
        error               text,
        dialect             text,
        extra_fields        jsonb,
        file_branch_keys    text[],
        attempts            integer NOT NULL DEFAULT 0,
        enqueued_at         timestamptz,
        started_at          timestamptz,
        finished_at         timestamptz,
        raw_purged_at       timestamptz,
        created_at          timestamptz NOT NULL DEFAULT now(),
        updated_at          timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX upload_sha256_poster_key ON ingest.upload (sha256, poster_key);
    CREATE INDEX upload_file_branch_keys_idx ON ingest.upload USING gin (file_branch_keys);
    -- The sweeper looks for unfinished uploads; the list endpoint filters by branch and status.
    CREATE INDEX upload_unfinished_idx ON ingest.upload (updated_at) WHERE status IN ('queued', 'processing');
    CREATE INDEX upload_branch_status_idx ON ingest.upload (branch_id, status, id);
    CREATE INDEX upload_status_idx ON ingest.upload (status, id);
    CREATE TABLE ingest.upload_chunk (
        upload_id   bigint NOT NULL REFERENCES ingest.upload(id) ON DELETE CASCADE,
        seq         integer NOT NULL,
        data        bytea NOT NULL,
        PRIMARY KEY (upload_id, seq)
    );
    CREATE TABLE ingest.upload_rejection (
        upload_id   bigint NOT NULL REFERENCES ingest.upload(id) ON DELETE CASCADE,
        line_no     integer NOT NULL,
        code        text NOT NULL,
        reason      text NOT NULL,
        masked_row  text NOT NULL,
        PRIMARY KEY (upload_id, line_no)
    );
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE ingest.upload_rejection;
    DROP TABLE ingest.upload_chunk;
    DROP TABLE ingest.upload;
    DROP TABLE ingest.api_token;
    DROP TABLE ingest.branch;
    """)
