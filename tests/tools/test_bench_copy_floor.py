"""The COPY floors of bench/e2e_throughput.py (bench/copy_floor.py) are only a fair baseline if they write
exactly the rows the load wrote, into every table it writes: otherwise the ratio compares different work.
Not timed here."""
from __future__ import annotations

import io

from sqlalchemy import text

from bench.copy_floor import FACT_TABLES, LOAD_TABLES, run_copy_floor
from services.common import task_names
from tests.support import REAL_FILES

NOT_WRITTEN_BY_LOADS = {"warehouse.alembic_version", "warehouse.version", "warehouse.dim_branch",
                        "warehouse.dim_product", "warehouse.correction_log"}


def load_real_files(client, admin_headers, run_task, count: int) -> None:
    for path in sorted(REAL_FILES.glob("*.csv"))[:count]:
        response = client.post("/v1/uploads", data={"file": (io.BytesIO(path.read_bytes()), path.name)},
                               headers=admin_headers)
        assert response.status_code == 202, response.get_json()
        assert run_task(task_names.PROCESS_UPLOAD, response.get_json()["id"]) == "loaded"


def table_digests(engine, tables) -> dict[str, tuple[int, str]]:
    with engine.connect() as conn:
        return {table: tuple(conn.execute(text(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t")).one())
            for table in tables}


def test_all_tables_floor_covers_every_table_a_load_writes(engine):
    with engine.connect() as conn:
        tables = set(conn.execute(text(
            "SELECT 'warehouse.' || relname FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = 'warehouse'::regnamespace")).scalars())
    assert set(LOAD_TABLES) == tables - NOT_WRITTEN_BY_LOADS
    assert set(FACT_TABLES) < set(LOAD_TABLES)


def test_copy_floors_put_back_exactly_what_the_load_wrote(client, admin_headers, run_task, engine, settings):
    load_real_files(client, admin_headers, run_task, 3)
    before = table_digests(engine, LOAD_TABLES)
    assert all(count > 0 for count, _ in before.values()), before

    run_copy_floor(settings.psycopg2_dsn, FACT_TABLES, runs=1)
    run_copy_floor(settings.psycopg2_dsn, LOAD_TABLES, runs=2)

    assert table_digests(engine, LOAD_TABLES) == before
