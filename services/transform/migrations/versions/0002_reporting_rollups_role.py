"""reporting: daily rollups, customer first-seen and visit periods, one maintenance function, read-only role

Revision ID: 0002_reporting_rollups_role
Revises: 0001_warehouse_star_schema
Create Date: 2026-11-22
"""
from alembic import op

revision = "0002_reporting_rollups_role"
down_revision = "0001_warehouse_star_schema"
branch_labels = None
depends_on = None

READ_ONLY_ROLE = "cafeflow_reporting"

RECORD_NEW_SALES = """
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


def upgrade() -> None:
    op.execute("""
    -- Daily rollups: the hourly ones hold ~14x more rows, and most reports (by branch, product, day,
    -- week, month, payment method) never need the hour. rollup_product_day also counts the sales that
    -- contained the product, which no hourly rollup can give (a basket may hold a product twice).
    CREATE TABLE warehouse.rollup_sales_day (
        local_date      date NOT NULL,
        branch_id       integer NOT NULL,
        payment_method  text NOT NULL,
        source          text NOT NULL,
        transactions    bigint NOT NULL,
        items           bigint NOT NULL,
        revenue         numeric(16, 2) NOT NULL,
        PRIMARY KEY (local_date, branch_id, payment_method, source)
    );
    CREATE TABLE warehouse.rollup_product_day (
        local_date    date NOT NULL,
        branch_id     integer NOT NULL,
        product_id    integer NOT NULL,
        source        text NOT NULL,
        transactions  bigint NOT NULL,
        quantity      bigint NOT NULL,
        revenue       numeric(16, 2) NOT NULL,
        PRIMARY KEY (local_date, branch_id, product_id, source)
    );
    COMMENT ON COLUMN warehouse.rollup_product_day.transactions IS 'Sales that contained the product.';

    -- New vs returning: the first sale of each customer pseudonym (any branch, any source), kept as the
    -- minimum so a backfill of older files moves it back; and which customers bought in which day,
    -- ISO week and month, so distinct customers per period are counted from a few thousand rows
    -- instead of every sale.
    CREATE TABLE warehouse.customer_first_seen (
        customer_key      uuid PRIMARY KEY,
        first_at          timestamptz NOT NULL,
        first_local_date  date NOT NULL
    );
    CREATE INDEX customer_first_seen_date_idx ON warehouse.customer_first_seen (first_local_date);
    CREATE TABLE warehouse.customer_period (
        period        text NOT NULL CHECK (period IN ('day', 'week', 'month')),
        period_start  date NOT NULL,
        source        text NOT NULL,
        customer_key  uuid NOT NULL,
        PRIMARY KEY (period, period_start, source, customer_key)
    );
    COMMENT ON TABLE warehouse.customer_period IS 'Customer pseudonyms that bought in a UK-local day, ISO week (Monday) or month.';

    """ + RECORD_NEW_SALES + """
    COMMENT ON FUNCTION warehouse.record_new_sales(bigint[]) IS
        'Call once per transaction with the ids of the sales it inserted (never twice for one id): keeps the daily rollups and the customer tables exact.';

    -- What is already loaded.
    SELECT warehouse.record_new_sales(ARRAY(SELECT id FROM warehouse.fact_transaction));
    """)
    # Roles are cluster-wide (several databases share one server), so create it only when missing.
    op.execute(f"""
    DO $do$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READ_ONLY_ROLE}') THEN
            CREATE ROLE {READ_ONLY_ROLE} NOLOGIN;
        END IF;
    END $do$;
    GRANT USAGE ON SCHEMA warehouse TO {READ_ONLY_ROLE};
    GRANT SELECT ON ALL TABLES IN SCHEMA warehouse TO {READ_ONLY_ROLE};
    ALTER DEFAULT PRIVILEGES IN SCHEMA warehouse GRANT SELECT ON TABLES TO {READ_ONLY_ROLE};
    REVOKE EXECUTE ON FUNCTION warehouse.record_new_sales(bigint[]) FROM PUBLIC;
    -- From ingest only what coverage and token checks read: no raw bytes, no rejected rows.
    GRANT USAGE ON SCHEMA ingest TO {READ_ONLY_ROLE};
    GRANT SELECT (id, name, branch_key) ON ingest.branch TO {READ_ONLY_ROLE};
    GRANT SELECT (id, name, digest, scope, revoked_at) ON ingest.api_token TO {READ_ONLY_ROLE};
    GRANT SELECT (id, filename, status, branch_id, expected_branch_key, file_branch_keys, rows_loaded,
                  rows_rejected, created_at, finished_at) ON ingest.upload TO {READ_ONLY_ROLE};
    """)


def downgrade() -> None:
    op.execute(f"""
    REVOKE ALL ON ALL TABLES IN SCHEMA ingest FROM {READ_ONLY_ROLE};
    REVOKE USAGE ON SCHEMA ingest FROM {READ_ONLY_ROLE};
    ALTER DEFAULT PRIVILEGES IN SCHEMA warehouse REVOKE SELECT ON TABLES FROM {READ_ONLY_ROLE};
    REVOKE ALL ON ALL TABLES IN SCHEMA warehouse FROM {READ_ONLY_ROLE};
    REVOKE USAGE ON SCHEMA warehouse FROM {READ_ONLY_ROLE};
    DROP FUNCTION warehouse.record_new_sales(bigint[]);
    DROP TABLE warehouse.customer_period;
    DROP TABLE warehouse.customer_first_seen;
    DROP TABLE warehouse.rollup_product_day;
    DROP TABLE warehouse.rollup_sales_day;
    """)
