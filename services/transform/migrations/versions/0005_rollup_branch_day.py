"""reporting: sales per branch and UK-local day, without the payment method

rollup_sales_day splits every branch-day by payment method, so sales by branch, day, week or month and
the coverage grid summed two rows into one for each branch-day. On the 10M-sale benchmark the coverage
grid's query (100 branches x 28 days) spent most of its 2 ms aggregating those 5,600 rows. This table
holds the 2,800 sums themselves.

It is kept by a trigger on rollup_sales_day (each inserted or updated row adds its change), not by a new
step in record_new_sales: old workers keep loading while this migration runs (docs/operations.md), and a
load that already started the old function would write rollup_sales_day and never this table. The lock
below waits for loads in flight and holds new ones until this commits; the trigger then sees every row
they write, whichever version of the function they run.

Revision ID: 0005_rollup_branch_day
Revises: 0004_customer_period_branch
Create Date: 2026-11-22
"""
from alembic import op

revision = "0005_rollup_branch_day"
down_revision = "0004_customer_period_branch"
branch_labels = None
depends_on = None

BACKFILL_ROWS = """
    SELECT local_date, branch_id, source, sum(transactions), sum(items), sum(revenue)
    FROM warehouse.rollup_sales_day GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


def upgrade() -> None:
    op.execute("""
    LOCK TABLE warehouse.rollup_sales_day IN SHARE MODE;
    CREATE TABLE warehouse.rollup_branch_day (
        local_date    date NOT NULL,
        branch_id     integer NOT NULL,
        source        text NOT NULL,
        transactions  bigint NOT NULL,
        items         bigint NOT NULL,
        revenue       numeric(16, 2) NOT NULL,
        PRIMARY KEY (local_date, branch_id, source)
    );
    COMMENT ON TABLE warehouse.rollup_branch_day IS
        'Sales per UK-local day, branch and source (file or live): rollup_sales_day summed over payment methods, '
        'kept by a trigger on it.';
    INSERT INTO warehouse.rollup_branch_day (local_date, branch_id, source, transactions, items, revenue)
    """ + BACKFILL_ROWS + """;
    ANALYZE warehouse.rollup_branch_day;

    CREATE FUNCTION warehouse.add_to_rollup_branch_day() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        -- rollup_sales_day rows only grow: an update adds NEW - OLD, an insert adds NEW.
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
    # Default privileges of migration 0002 already grant SELECT on the new table to cafeflow_reporting.


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER rollup_branch_day_follows ON warehouse.rollup_sales_day;
    DROP FUNCTION warehouse.add_to_rollup_branch_day();
    DROP TABLE warehouse.rollup_branch_day;
    """)
