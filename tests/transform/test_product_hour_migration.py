"""Migration 0008: rollup_product_hour gains the count of sales containing each product, rebuilt from the facts,
keyed product first; a worker older than the schema gets a transient error instead of leaving it inexact."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.transform.rollups import differences
from services.transform.tasks import is_transient
from tests.support import REAL_FILES
from tests.transform.helpers import load

BEFORE = "0007_customer_index_covering"
PRODUCT_HOUR_KEY = ["product_id", "local_date", "local_hour", "branch_id", "source"]


def migrate_warehouse(engine, settings, step, revision: str) -> None:
    from services.common.migrate import HISTORIES, alembic_config

    history = next(h for h in HISTORIES if h.schema == "warehouse")
    with engine.begin() as conn:
        cfg = alembic_config(history, settings.database_url)
        cfg.attributes["connection"] = conn
        step(cfg, revision)


def primary_key(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("""
            SELECT a.attname FROM pg_index x
            CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
            WHERE x.indrelid = 'warehouse.rollup_product_hour'::regclass AND x.indisprimary ORDER BY k.n""")).scalars())


def load_real_file(client, run_task, headers, name: str) -> None:
    assert load(client, run_task, (REAL_FILES / name).read_bytes(), headers, name)["status"] == "loaded"


def test_the_upgrade_rebuilds_the_hourly_product_counts_from_the_facts(client, admin_headers, run_task, engine,
                                                                       settings):
    from alembic import command

    for name in ("leeds_25-08-2021_09-00-00.csv", "chesterfield_25-08-2021_09-00-00.csv"):
        load_real_file(client, run_task, admin_headers, name)
    try:
        migrate_warehouse(engine, settings, command.downgrade, BEFORE)
        with engine.connect() as conn:
            columns = conn.execute(text("""SELECT column_name FROM information_schema.columns
                WHERE table_schema = 'warehouse' AND table_name = 'rollup_product_hour'""")).scalars().all()
        assert "transactions" not in columns
        assert primary_key(engine) == ["local_date", "local_hour", "branch_id", "product_id", "source"]
    finally:
        migrate_warehouse(engine, settings, command.upgrade, "head")
    assert primary_key(engine) == PRODUCT_HOUR_KEY
    with engine.connect() as conn:
        rows, sold, lines = conn.execute(text("""
            SELECT count(*), sum(transactions), (SELECT count(DISTINCT (transaction_id, product_id))
                                                 FROM warehouse.fact_transaction_item)
            FROM warehouse.rollup_product_hour""")).one()
        assert rows > 0 and sold == lines                    # one count per sale and product it contained
        assert differences(Session(bind=conn), ("rollup_product_hour",)) == {}


def test_a_worker_older_than_the_schema_is_told_to_retry(client, admin_headers, run_task, engine):
    load_real_file(client, run_task, admin_headers, "leeds_25-08-2021_09-00-00.csv")
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*), sum(quantity) FROM warehouse.rollup_product_hour")).one()
        # What a worker of migration 0007's code writes: no sale count.
        with pytest.raises(DBAPIError) as refused:
            conn.execute(text("""
                INSERT INTO warehouse.rollup_product_hour AS r
                    (local_date, local_hour, branch_id, product_id, source, quantity, revenue)
                SELECT local_date, local_hour, branch_id, product_id, source, 1, 2.15
                FROM warehouse.rollup_product_hour
                ON CONFLICT (local_date, local_hour, branch_id, product_id, source) DO UPDATE
                SET quantity = r.quantity + EXCLUDED.quantity, revenue = r.revenue + EXCLUDED.revenue"""))
        conn.rollback()
        assert refused.value.orig.pgcode == "57P03" and is_transient(refused.value)
        assert conn.execute(text("SELECT count(*), sum(quantity) FROM warehouse.rollup_product_hour")).one() == before
