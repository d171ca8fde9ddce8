"""corrections: which uploads contain which sale, lookups by branch and customer, one rollup definition

The warehouse could only grow. To take sales away exactly (an upload retracted, a branch-day replaced by
a corrected file, a refund, a customer forgotten) it needs:

- `upload_sale`: every upload that contained each file sale (the first one and every later one whose
  row was a duplicate). A file sale stands while some upload still claims it; retracting an upload
  removes only the sales no other standing upload contains. Backfilled from `fact_transaction.upload_id`
  (duplicates of earlier loads were not recorded, so an old sale is claimed by its first upload only).
- an index on (branch_id, occurred_at): the file sales of a branch-day, which a replacing file supersedes;
- an index on (customer_key, occurred_at): a customer's remaining sales, which decide whether a customer
  period or first sale survives a correction, and which forgetting a customer rewrites.
- `correction_log`: the audit of every correction (what, when, who, how many sales; never a customer).

Every derived table is now kept by one definition in code (services/transform/rollups.py) that adds and
takes away alike, so the maintenance function of migrations 0002-0004 and the trigger of 0005 go. The
function stays as a stub that tells a worker older than this schema to retry (SQLSTATE 57P03, which every
worker treats as transient), so a rolling upgrade never loads a sale without its bookkeeping.

Revision ID: 0006_corrections
Revises: 0005_rollup_branch_day
Create Date: 2026-12-03
"""
from alembic import op

revision = "0006_corrections"
down_revision = "0005_rollup_branch_day"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    SET LOCAL work_mem = '256MB';
    -- Loads in flight finish first; new ones wait for this migration (and then meet the stub below).
    LOCK TABLE warehouse.fact_transaction IN SHARE MODE;

    CREATE TABLE warehouse.upload_sale (
        transaction_id  bigint NOT NULL,
        upload_id       bigint NOT NULL,
        PRIMARY KEY (transaction_id, upload_id)
    );
    COMMENT ON TABLE warehouse.upload_sale IS
        'Which uploads contained each file sale. A file sale stands while at least one upload that is not '
        'retracted or superseded claims it.';
    INSERT INTO warehouse.upload_sale (transaction_id, upload_id)
    SELECT id, upload_id FROM warehouse.fact_transaction WHERE source = 'file' AND upload_id IS NOT NULL ORDER BY id;
    CREATE INDEX upload_sale_upload_idx ON warehouse.upload_sale (upload_id);

    CREATE INDEX fact_transaction_branch_time_idx ON warehouse.fact_transaction (branch_id, occurred_at);
    CREATE INDEX fact_transaction_customer_idx ON warehouse.fact_transaction (customer_key, occurred_at)
        WHERE customer_key IS NOT NULL;

    CREATE TABLE warehouse.correction_log (
        id              bigserial PRIMARY KEY,
        kind            text NOT NULL CHECK (kind IN ('replace', 'retract', 'refund', 'forget')),
        at              timestamptz NOT NULL DEFAULT now(),
        actor           text NOT NULL,
        upload_id       bigint,
        order_id        bigint,
        sales_removed   integer NOT NULL DEFAULT 0,
        sales_changed   integer NOT NULL DEFAULT 0
    );
    COMMENT ON TABLE warehouse.correction_log IS
        'Every correction: a replacing upload, a retraction, a refund, a forgotten customer (a count, never '
        'the customer). Reasons stay with their upload or order.';

    DROP TRIGGER rollup_branch_day_follows ON warehouse.rollup_sales_day;
    DROP FUNCTION warehouse.add_to_rollup_branch_day();

    CREATE OR REPLACE FUNCTION warehouse.record_new_sales(transaction_ids bigint[]) RETURNS void
    LANGUAGE plpgsql AS $fn$
    BEGIN
        RAISE EXCEPTION 'this worker predates warehouse migration 0006 (corrections); it will retry on an upgraded worker'
            USING ERRCODE = '57P03';
    END
    $fn$;
    COMMENT ON FUNCTION warehouse.record_new_sales(bigint[]) IS
        'Retired by migration 0006: derived tables are kept by services/transform/rollups.py. Raises 57P03 so that '
        'an old worker retries instead of loading without bookkeeping.';
    ANALYZE warehouse.upload_sale;
    """)
    # Default privileges of migration 0002 grant SELECT on the new tables to cafeflow_reporting.


def downgrade() -> None:
    # The maintenance function and trigger as migrations 0004 and 0005 left them, written out whole.
    op.execute("""
    DROP TABLE warehouse.correction_log;
    DROP INDEX warehouse.fact_transaction_customer_idx;
    DROP INDEX warehouse.fact_transaction_branch_time_idx;
    DROP TABLE warehouse.upload_sale;

""" + RECORD_NEW_SALES_0004 + """
    CREATE FUNCTION warehouse.add_to_rollup_branch_day() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        INSERT INTO warehouse.rollup_branch_day AS r (local_date, branch_id, source, transactions, items, revenue)
        VALUES (NEW.local_date, NEW.branch_id, NEW.source,
                NEW.transactions - coalesce(OLD.transactions, 0), NEW.items - coalesce(OLD.items, 0),
                NEW.revenue - coalesce(OLD.revenue, 0))
        ON CONFLICT (local_date, branch_id, source) DO UPDATE
        SET transactions = r.transactions + EXCLUDED.transactions, items = r.items + EXCLUDED.items,
            revenue = r.revenue + EXCLUDED.revenue;
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER rollup_branch_day_follows AFTER INSERT OR UPDATE ON warehouse.rollup_sales_day
        FOR EACH ROW EXECUTE FUNCTION warehouse.add_to_rollup_branch_day();
    """)


# The function as migration 0004 left it, restored by the downgrade.
RECORD_NEW_SALES_0004 = """
    CREATE OR REPLACE FUNCTION warehouse.record_new_sales(transaction_ids bigint[]) RETURNS void
    LANGUAGE sql VOLATILE AS $fn$
    WITH sale AS MATERIALIZED (
        SELECT f.id, f.branch_id, f.occurred_at, (f.occurred_at AT TIME ZONE 'Europe/London')::date AS local_date,
               extract(hour FROM f.occurred_at AT TIME ZONE 'Europe/London')::smallint AS local_hour,
               f.payment_method, f.source, f.total, f.customer_key
        FROM warehouse.fact_transaction f WHERE f.id = ANY(transaction_ids)
    ), line AS MATERIALIZED (
        SELECT s.id, s.local_date, s.branch_id, s.source, i.product_id, i.quantity, i.unit_price
        -- A lookup by primary key per sale (OFFSET 0 keeps the subquery from being flattened): the
        -- planner guesses 10 rows for the CTE above and otherwise may hash-join a scan of every item.
        FROM sale s CROSS JOIN LATERAL (
            SELECT i.product_id, i.quantity, i.unit_price FROM warehouse.fact_transaction_item i
            WHERE i.transaction_id = s.id OFFSET 0) i
    ), basket AS MATERIALIZED (
        SELECT s.*, q.items FROM sale s JOIN (SELECT id, sum(quantity) AS items FROM line GROUP BY id) q ON q.id = s.id
    ), sales_hour_chain AS (
        INSERT INTO warehouse.rollup_sales_hour_chain AS r
            (local_date, local_hour, source, transactions, items, revenue)
        SELECT local_date, local_hour, source, count(*), sum(items), sum(total)
        FROM basket GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (local_date, local_hour, source) DO UPDATE
        SET transactions = r.transactions + EXCLUDED.transactions, items = r.items + EXCLUDED.items,
            revenue = r.revenue + EXCLUDED.revenue
    ), product_day_chain AS (
        INSERT INTO warehouse.rollup_product_day_chain AS r
            (local_date, product_id, source, transactions, quantity, revenue)
        SELECT local_date, product_id, source, count(DISTINCT id), sum(quantity), sum(quantity * unit_price)
        FROM line GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (local_date, product_id, source) DO UPDATE
        SET transactions = r.transactions + EXCLUDED.transactions, quantity = r.quantity + EXCLUDED.quantity,
            revenue = r.revenue + EXCLUDED.revenue
    ), sales_day AS (
        INSERT INTO warehouse.rollup_sales_day AS r
            (local_date, branch_id, payment_method, source, transactions, items, revenue)
        SELECT local_date, branch_id, payment_method, source, count(*), sum(items), sum(total)
        FROM basket GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (local_date, branch_id, payment_method, source) DO UPDATE
        SET transactions = r.transactions + EXCLUDED.transactions, items = r.items + EXCLUDED.items,
            revenue = r.revenue + EXCLUDED.revenue
    ), product_day AS (
        INSERT INTO warehouse.rollup_product_day AS r
            (local_date, branch_id, product_id, source, transactions, quantity, revenue)
        SELECT local_date, branch_id, product_id, source, count(DISTINCT id), sum(quantity),
               sum(quantity * unit_price)
        FROM line GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (local_date, branch_id, product_id, source) DO UPDATE
        SET transactions = r.transactions + EXCLUDED.transactions, quantity = r.quantity + EXCLUDED.quantity,
            revenue = r.revenue + EXCLUDED.revenue
    ), first_seen AS (
        INSERT INTO warehouse.customer_first_seen AS c (customer_key, first_at, first_local_date)
        SELECT DISTINCT ON (customer_key) customer_key, occurred_at, local_date
        FROM sale s WHERE customer_key IS NOT NULL
          -- Most customers are known already: skip them here, because ON CONFLICT DO UPDATE locks the
          -- existing row even when its WHERE is false, which would queue every concurrent load behind this one.
          AND NOT EXISTS (SELECT 1 FROM warehouse.customer_first_seen k
                          WHERE k.customer_key = s.customer_key AND k.first_at <= s.occurred_at)
        ORDER BY customer_key, occurred_at
        ON CONFLICT (customer_key) DO UPDATE
        SET first_at = EXCLUDED.first_at, first_local_date = EXCLUDED.first_local_date
        WHERE EXCLUDED.first_at < c.first_at
    ), customer_period_branch AS (
        INSERT INTO warehouse.customer_period_branch (branch_id, period, period_start, source, customer_key)
        SELECT DISTINCT s.branch_id, p.period, p.period_start, s.source, s.customer_key
        FROM sale s CROSS JOIN LATERAL (VALUES ('day', s.local_date),
                                               ('week', date_trunc('week', s.local_date)::date),
                                               ('month', date_trunc('month', s.local_date)::date)) p(period, period_start)
        WHERE s.customer_key IS NOT NULL
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT DO NOTHING
    )
    INSERT INTO warehouse.customer_period (period, period_start, source, customer_key)
    SELECT DISTINCT p.period, p.period_start, s.source, s.customer_key
    FROM sale s CROSS JOIN LATERAL (VALUES ('day', s.local_date),
                                           ('week', date_trunc('week', s.local_date)::date),
                                           ('month', date_trunc('month', s.local_date)::date)) p(period, period_start)
    WHERE s.customer_key IS NOT NULL
    ORDER BY 1, 2, 3, 4
    ON CONFLICT DO NOTHING
    $fn$;
"""
