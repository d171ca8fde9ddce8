"""reporting: chain-wide rollups (no branch) for the questions asked of the whole chain

The 10M-sale benchmark showed the per-branch rollups too wide for a chain of 100 branches: four weeks of
rollup_product_day are 250k rows (100 branches x 91 products x 28 days), of rollup_sales_hour 73k, far over a
50 ms answer. Without a branch filter, products and hours are now read from two tables without the branch
dimension (28 x 91 and 28 x 14 rows). Their rows are shared by every branch's loads of a day, so two
concurrent loads of the same day queue for them; the wait is short because the function runs at the end of
the load's transaction, just before its commit.

Revision ID: 0003_reporting_chain_rollups
Revises: 0002_reporting_rollups_role
Create Date: 2026-11-22
"""
from alembic import op

revision = "0003_reporting_chain_rollups"
down_revision = "0002_reporting_rollups_role"
branch_labels = None
depends_on = None

RECORD_NEW_SALES = """
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


def upgrade() -> None:
    op.execute("""
    CREATE TABLE warehouse.rollup_sales_hour_chain (
        local_date    date NOT NULL,
        local_hour    smallint NOT NULL,
        source        text NOT NULL,
        transactions  bigint NOT NULL,
        items         bigint NOT NULL,
        revenue       numeric(16, 2) NOT NULL,
        PRIMARY KEY (local_date, local_hour, source)
    );
    CREATE TABLE warehouse.rollup_product_day_chain (
        local_date    date NOT NULL,
        product_id    integer NOT NULL,
        source        text NOT NULL,
        transactions  bigint NOT NULL,
        quantity      bigint NOT NULL,
        revenue       numeric(16, 2) NOT NULL,
        PRIMARY KEY (local_date, product_id, source)
    );
    -- One branch's products (a manager's dashboard): its rows, not every branch's rows of the range.
    CREATE INDEX rollup_product_day_branch_idx ON warehouse.rollup_product_day (branch_id, local_date);
    COMMENT ON TABLE warehouse.rollup_sales_hour_chain IS 'rollup_sales_hour summed over branches and payment methods.';
    COMMENT ON TABLE warehouse.rollup_product_day_chain IS 'rollup_product_day summed over branches (a sale is in one branch, so its counts add up).';

    INSERT INTO warehouse.rollup_sales_hour_chain
    SELECT local_date, local_hour, source, sum(transactions), sum(items), sum(revenue)
    FROM warehouse.rollup_sales_hour GROUP BY 1, 2, 3;
    INSERT INTO warehouse.rollup_product_day_chain
    SELECT local_date, product_id, source, sum(transactions), sum(quantity), sum(revenue)
    FROM warehouse.rollup_product_day GROUP BY 1, 2, 3;
    """ + RECORD_NEW_SALES + """
    """)
    # Default privileges of migration 0002 already grant SELECT on these new tables to cafeflow_reporting.


def downgrade() -> None:
    # 0002's function first (this one writes to the tables dropped below).
    op.execute(RECORD_NEW_SALES_0002)
    op.execute("""
    DROP TABLE warehouse.rollup_product_day_chain;
    DROP TABLE warehouse.rollup_sales_hour_chain;
    """)


# 0002's function, restored by the downgrade.
RECORD_NEW_SALES_0002 = """
    -- The one maintenance step for everything above, given the ids of sales just inserted (by the
    -- file loader for the rows that were new, or by the live path). Rows are upserted in key order,
    -- like the hourly rollups, so two concurrent loads cannot deadlock.
    CREATE OR REPLACE FUNCTION warehouse.record_new_sales(transaction_ids bigint[]) RETURNS void
    LANGUAGE sql VOLATILE AS $fn$
    WITH sale AS MATERIALIZED (
        SELECT f.id, f.branch_id, f.occurred_at, (f.occurred_at AT TIME ZONE 'Europe/London')::date AS local_date,
               f.payment_method, f.source, f.total, f.customer_key
        FROM warehouse.fact_transaction f WHERE f.id = ANY(transaction_ids)
    ), line AS MATERIALIZED (
        SELECT s.id, s.local_date, s.branch_id, s.source, i.product_id, i.quantity, i.unit_price
        -- A lookup by primary key per sale (OFFSET 0 keeps the subquery from being flattened): the
        -- planner guesses 10 rows for the CTE above and otherwise may hash-join a scan of every item.
        FROM sale s CROSS JOIN LATERAL (
            SELECT i.product_id, i.quantity, i.unit_price FROM warehouse.fact_transaction_item i
            WHERE i.transaction_id = s.id OFFSET 0) i
    ), sales_day AS (
        INSERT INTO warehouse.rollup_sales_day AS r
            (local_date, branch_id, payment_method, source, transactions, items, revenue)
        SELECT s.local_date, s.branch_id, s.payment_method, s.source, count(*), sum(q.items), sum(s.total)
        FROM sale s JOIN (SELECT id, sum(quantity) AS items FROM line GROUP BY id) q ON q.id = s.id
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
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
