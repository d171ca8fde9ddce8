"""rollup_product_hour counts the sales containing each product, keyed product first: it answers a product's
sales by hour, weekday and peak hours

Until now it held only quantity and revenue, so no report could read it (a product's `transactions` is the
number of sales that contained it) and those questions read the fact tables. It gains `transactions` (as
rollup_product_day has) and its primary key now leads with product_id, so one product's hours of a range are
one contiguous index range instead of every product's rows of that range.

The table is rebuilt from the facts: loads in flight finish first and new ones wait (the lock on
fact_transaction) until this commits. A worker older than this schema would insert rows without the count;
the trigger below turns that into SQLSTATE 57P03, which every worker treats as transient, so an old worker
retries until it is replaced and never leaves the table inexact. Rebuilding reads every product line once
(timed on the 10M-sale benchmark warehouse in the README); run it when loads are quiet.

Revision ID: 0008_product_hour_transactions
Revises: 0007_customer_index_covering
Create Date: 2026-12-03
"""
from alembic import op

revision = "0008_product_hour_transactions"
down_revision = "0007_customer_index_covering"
branch_labels = None
depends_on = None

LOCAL = "(f.occurred_at AT TIME ZONE 'Europe/London')"

# services/transform/rollups.py's definition of the table, as of this revision: one row per sale and product
# (its lines summed), then summed per key; transactions counts those rows.
REBUILD = f"""
INSERT INTO warehouse.rollup_product_hour
    (product_id, local_date, local_hour, branch_id, source, transactions, quantity, revenue)
SELECT product_id, local_date, local_hour, branch_id, source, count(*), sum(quantity), sum(revenue)
FROM (SELECT i.product_id, {LOCAL}::date AS local_date, extract(hour FROM {LOCAL})::smallint AS local_hour,
             f.branch_id, f.source, sum(i.quantity) AS quantity, sum(i.quantity * i.unit_price) AS revenue
      FROM warehouse.fact_transaction f JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
      GROUP BY f.id, i.product_id) line
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
"""


def upgrade() -> None:
    op.execute("""
    SET LOCAL work_mem = '256MB';
    SET LOCAL maintenance_work_mem = '512MB';
    -- Loads in flight finish first; new ones wait for this migration.
    LOCK TABLE warehouse.fact_transaction IN SHARE MODE;
    TRUNCATE warehouse.rollup_product_hour;
    ALTER TABLE warehouse.rollup_product_hour
        DROP CONSTRAINT rollup_product_hour_pkey,
        ADD COLUMN transactions bigint NOT NULL;
    """)
    op.execute(REBUILD)
    op.execute("""
    ALTER TABLE warehouse.rollup_product_hour
        ADD PRIMARY KEY (product_id, local_date, local_hour, branch_id, source);
    COMMENT ON TABLE warehouse.rollup_product_hour IS
        'Per product, UK-local day and hour, branch and source: transactions (sales containing the product), '
        'quantity and revenue (quantity x unit price) of its lines.';
    ANALYZE warehouse.rollup_product_hour;

    CREATE FUNCTION warehouse.refuse_product_hour_without_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        RAISE EXCEPTION 'this worker is older than the warehouse schema (rollup_product_hour.transactions): retry'
            USING ERRCODE = '57P03';
    END
    $fn$;
    CREATE TRIGGER rollup_product_hour_needs_count BEFORE INSERT ON warehouse.rollup_product_hour
        FOR EACH ROW WHEN (NEW.transactions IS NULL) EXECUTE FUNCTION warehouse.refuse_product_hour_without_count();
    """)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER rollup_product_hour_needs_count ON warehouse.rollup_product_hour;
    DROP FUNCTION warehouse.refuse_product_hour_without_count();
    ALTER TABLE warehouse.rollup_product_hour
        DROP CONSTRAINT rollup_product_hour_pkey,
        DROP COLUMN transactions,
        ADD PRIMARY KEY (local_date, local_hour, branch_id, product_id, source);
    COMMENT ON TABLE warehouse.rollup_product_hour IS NULL;
    """)
