"""reporting: sales per branch and UK-local day, without the payment method

rollup_sales_day splits every branch-day by payment method, so sales by branch, day, week or month and
the coverage grid summed two rows into one for each branch-day. On the 10M-sale benchmark the coverage
grid's query (100 branches x 28 days) spent most of its 2 ms aggregating those 5,600 rows. This table
holds the 2,800 sums themselves; record_new_sales keeps it like rollup_sales_day, from the same rows.

The backfill sums rollup_sales_day (which holds every sale already), in key order.

Revision ID: 0005_rollup_branch_day
Revises: 0004_customer_period_branch
Create Date: 2026-11-22
"""
import importlib.util
from pathlib import Path

from alembic import op

revision = "0005_rollup_branch_day"
down_revision = "0004_customer_period_branch"
branch_labels = None
depends_on = None


def _previous():
    path = Path(__file__).with_name("0004_customer_period_branch.py")
    spec = importlib.util.spec_from_file_location("reporting_0004", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_NEXT_STEP = "    ), product_day AS (\n"
# 0004's function with one more step after its rollup_sales_day upsert, from the same per-sale rows.
_BRANCH_DAY_STEP = """    ), branch_day AS (
        INSERT INTO warehouse.rollup_branch_day AS r (local_date, branch_id, source, transactions, items, revenue)
        SELECT local_date, branch_id, source, count(*), sum(items), sum(total)
        FROM basket GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (local_date, branch_id, source) DO UPDATE
        SET transactions = r.transactions + EXCLUDED.transactions, items = r.items + EXCLUDED.items,
            revenue = r.revenue + EXCLUDED.revenue
"""

BACKFILL_ROWS = """
    SELECT local_date, branch_id, source, sum(transactions), sum(items), sum(revenue)
    FROM warehouse.rollup_sales_day GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


def record_new_sales() -> str:
    previous = _previous().record_new_sales()
    assert previous.count(_NEXT_STEP) == 1, "0004's record_new_sales no longer has the expected steps"
    return previous.replace(_NEXT_STEP, _BRANCH_DAY_STEP + _NEXT_STEP)


def upgrade() -> None:
    op.execute("""
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
        'Sales per UK-local day, branch and source (file or live): rollup_sales_day summed over payment methods.';
    INSERT INTO warehouse.rollup_branch_day (local_date, branch_id, source, transactions, items, revenue)
    """ + BACKFILL_ROWS + """;
    ANALYZE warehouse.rollup_branch_day;
    """ + record_new_sales())
    # Default privileges of migration 0002 already grant SELECT on the new table to cafeflow_reporting.


def downgrade() -> None:
    op.execute(_previous().record_new_sales())
    op.execute("DROP TABLE warehouse.rollup_branch_day;")
