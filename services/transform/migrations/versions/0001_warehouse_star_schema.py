"""warehouse star schema: branch and product dimensions, sales facts, hourly rollups, version

Revision ID: 0001_warehouse_star_schema
Revises:
Create Date: 2026-11-22
"""
from alembic import op

revision = "0001_warehouse_star_schema"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE warehouse.dim_branch (
        id          serial PRIMARY KEY,
        branch_key  text NOT NULL UNIQUE,
        name        text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
    );
    COMMENT ON TABLE warehouse.dim_branch IS 'One row per branch; branch_key is the name folded to lower-case ASCII words.';

    CREATE TABLE warehouse.dim_product (
        id           serial PRIMARY KEY,
        product_key  text NOT NULL UNIQUE,
        name         text NOT NULL,
        size         text,
        flavour      text,
        created_at   timestamptz NOT NULL DEFAULT now()
    );
    COMMENT ON TABLE warehouse.dim_product IS 'One row per product, size and flavour; size and flavour are NULL when the product has none.';

    CREATE TABLE warehouse.fact_transaction (
        id              bigserial PRIMARY KEY,
        natural_key     uuid NOT NULL UNIQUE,
        branch_id       integer NOT NULL,
        occurred_at     timestamptz NOT NULL,
        total           numeric(12, 2) NOT NULL CHECK (total >= 0),
        payment_method  text NOT NULL CHECK (payment_method IN ('CASH', 'CARD')),
        card_network    text,
        customer_key    uuid,
        upload_id       bigint,
        source          text NOT NULL CHECK (source IN ('file', 'live')),
        source_line     integer,
        extra           jsonb,
        loaded_at       timestamptz NOT NULL DEFAULT now()
    );
    COMMENT ON COLUMN warehouse.fact_transaction.natural_key IS 'Keyed hash of the sale (branch, time, customer, basket, total, payment) and its repeat number within a file: the same sale loaded twice collides here.';
    COMMENT ON COLUMN warehouse.fact_transaction.customer_key IS 'Keyed pseudonym of the customer name (HMAC); NULL when the till recorded no name.';
    COMMENT ON COLUMN warehouse.fact_transaction.occurred_at IS 'When the sale happened; branch files are UK local time, converted here.';
    CREATE INDEX fact_transaction_occurred_brin ON warehouse.fact_transaction USING brin (occurred_at);
    -- The fact tables declare their joins (dim ids, transaction_id) in comments instead of enforced
    -- foreign keys: per-row FK triggers made COPY of the items 8x slower (bench/e2e_throughput.py), and
    -- the only writer inserts facts by joining to the rows it references, in one transaction.
    COMMENT ON COLUMN warehouse.fact_transaction.branch_id IS 'Joins warehouse.dim_branch(id).';

    CREATE TABLE warehouse.fact_transaction_item (
        transaction_id  bigint NOT NULL,
        line_no         smallint NOT NULL,
        product_id      integer NOT NULL,
        quantity        integer NOT NULL CHECK (quantity > 0),
        unit_price      numeric(10, 2) NOT NULL CHECK (unit_price >= 0),
        PRIMARY KEY (transaction_id, line_no)
    );
    COMMENT ON COLUMN warehouse.fact_transaction_item.transaction_id IS 'Joins warehouse.fact_transaction(id).';
    COMMENT ON COLUMN warehouse.fact_transaction_item.product_id IS 'Joins warehouse.dim_product(id).';

    -- Rollups by UK-local day and hour, updated in the same transaction as the facts they sum; like the
    -- facts, their dimension ids are joins, not enforced keys (the FK triggers doubled the rollup upsert).
    CREATE TABLE warehouse.rollup_sales_hour (
        local_date      date NOT NULL,
        local_hour      smallint NOT NULL,
        branch_id       integer NOT NULL,
        payment_method  text NOT NULL,
        source          text NOT NULL,
        transactions    bigint NOT NULL,
        items           bigint NOT NULL,
        revenue         numeric(16, 2) NOT NULL,
        PRIMARY KEY (local_date, local_hour, branch_id, payment_method, source)
    );
    CREATE TABLE warehouse.rollup_product_hour (
        local_date   date NOT NULL,
        local_hour   smallint NOT NULL,
        branch_id    integer NOT NULL,
        product_id   integer NOT NULL,
        source       text NOT NULL,
        quantity     bigint NOT NULL,
        revenue      numeric(16, 2) NOT NULL,
        PRIMARY KEY (local_date, local_hour, branch_id, product_id, source)
    );

    -- Bumped by every load; the reporting cache keys on it.
    CREATE TABLE warehouse.version (
        id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        version     bigint NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO warehouse.version (id, version) VALUES (1, 0);
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE warehouse.version;
    DROP TABLE warehouse.rollup_product_hour;
    DROP TABLE warehouse.rollup_sales_hour;
    DROP TABLE warehouse.fact_transaction_item;
    DROP TABLE warehouse.fact_transaction;
    DROP TABLE warehouse.dim_product;
    DROP TABLE warehouse.dim_branch;
    """)
