"""Alembic histories, one per schema owner, each with its own version table inside its schema.

`cafeflow migrate` runs them in order under an advisory lock, so two migrate jobs started at once
(a compose one-shot and a manual run) cannot interleave. Running it again is a no-op.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

SERVICES = Path(__file__).resolve().parent.parent
_LOCK_ID = 0x0CAFEF10


@dataclass(frozen=True)
class History:
    schema: str
    script_location: Path


HISTORIES = (
    History("ingest", SERVICES / "ingest" / "migrations"),
    History("warehouse", SERVICES / "transform" / "migrations"),
    History("orders", SERVICES / "orders" / "migrations"),
)


def alembic_config(history: History, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(history.script_location))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["schema"] = history.schema
    return cfg


def heads(history: History) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(history, "postgresql://")).get_heads())


def upgrade_all(database_url: str, revision: str = "head") -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            for history in HISTORIES:
                cfg = alembic_config(history, database_url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def behind_head(database_url: str) -> list[str]:
    """The schemas this code's migrations would still change: never migrated, or at a revision older than
    the history's head. A revision this code does not know is newer (a rollback of the code): not behind."""
    engine = create_engine(database_url)
    behind = []
    try:
        with engine.connect() as conn:
            for history in HISTORIES:
                table = conn.execute(text("SELECT to_regclass(:name)"),
                                     {"name": f"{history.schema}.alembic_version"}).scalar()
                applied = set() if table is None else set(conn.execute(
                    text(f'SELECT version_num FROM "{history.schema}".alembic_version')).scalars())
                script = ScriptDirectory.from_config(alembic_config(history, "postgresql://"))
                known = {revision for revision in applied if _known(script, revision)}
                if not applied or (known and known != set(script.get_heads())):
                    behind.append(history.schema)
    finally:
        engine.dispose()
    return behind


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # noqa: BLE001 - alembic raises several kinds for a revision it has never seen
        return False


def run_env() -> None:
    """Body of every history's env.py."""
    cfg = context.config
    schema = cfg.attributes["schema"]
    connection = cfg.attributes.get("connection")
    if connection is None:
        engine = create_engine(cfg.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            _run(conn, schema)
        engine.dispose()
    else:
        _run(connection, schema)


def _run(connection, schema: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table="alembic_version",
        version_table_schema=schema,
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()
