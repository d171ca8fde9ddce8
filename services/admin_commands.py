"""The admin commands of `cafeflow`: API tokens, database reader logins, branches, orders users and upload
replays. Kept apart from services/cli.py, which runs the processes (serve, worker, beat, up, ...)."""
from __future__ import annotations

import os
import sys

import click

from services.common import task_names, upload_states
from services.orders.permissions import ROLES


def load_settings():
    from services.common.settings import get_settings

    try:
        return get_settings()
    except Exception as exc:  # pydantic ValidationError: say which variable is wrong, then stop
        raise click.ClickException(f"configuration error: {exc}") from exc


_settings = load_settings


@click.group()
def token() -> None:
    """API tokens that are not a branch's (branch upload tokens: `cafeflow branch add`)."""


TOKEN_SCOPES = ("reporting",)


@token.command("add")
@click.argument("name")
@click.option("--scope", type=click.Choice(TOKEN_SCOPES), required=True, help="what the token may do")
def token_add(name: str, scope: str) -> None:
    """Create a token and print it, once (only its digest is stored)."""
    from services.common.db import Database
    from services.common.tokens import new_token, token_digest
    from services.common.uploads import ApiToken

    if not name.strip() or len(name) > 100 or not name.isprintable():
        raise click.ClickException("NAME must be 1-100 printable characters")
    secret = new_token("cfr")
    db = Database(_settings().database_url)
    with db.session() as session:
        session.add(ApiToken(name=f"{scope}:{name.strip()}", digest=token_digest(secret), scope=scope))
        session.commit()
    click.echo(secret)



@click.group()
def db() -> None:
    """Database roles for readers outside the services."""


READ_ONLY_ROLE = "cafeflow_reporting"   # created by the warehouse migration 0002


@db.command("reader")
@click.argument("name")
@click.option("--password-env", default="READER_PASSWORD", show_default=True,
              help="environment variable holding the password (else a hidden prompt, or stdin when piped)")
def db_reader(name: str, password_env: str) -> None:
    """Create (or update the password of) a LOGIN role that reads only what reporting reads.

    For Grafana and BI tools: a member of the read-only role cafeflow_reporting (the warehouse, a few
    ingest columns), read-only by default, and never the orders schema's customer names, addresses or phones.
    """
    import re

    import psycopg2
    from psycopg2 import sql

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) or name == READ_ONLY_ROLE:
        raise click.BadParameter("a lower-case PostgreSQL identifier other than the read-only role itself",
                                 param_hint="NAME")
    password = os.environ.get(password_env) or click.prompt("password", hide_input=True)
    if len(password) < 12:
        raise click.ClickException("the password must have at least 12 characters")
    conn = psycopg2.connect(_settings().psycopg2_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READ_ONLY_ROLE,))
            if cur.fetchone() is None:
                raise click.ClickException(f"role {READ_ONLY_ROLE} does not exist: run 'cafeflow migrate' first")
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            role = sql.Identifier(name)
            cur.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s")
                        .format(role), (password,))
            cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(READ_ONLY_ROLE), role))
            cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
    finally:
        conn.close()
    click.echo(f"reader role {name}: {'created' if verb == 'CREATE' else 'password updated'}, "
               f"member of {READ_ONLY_ROLE}")


@click.group()
def branch() -> None:
    """Branches and their upload tokens."""


@branch.command("add")
@click.argument("names", nargs=-1, required=True)
@click.option("--rotate", is_flag=True, help="revoke the branch's existing tokens first")
@click.option("--token/--no-token", default=True, show_default=True,
              help="print a new upload token (one line per branch); --no-token only registers the branches")
def branch_add(names: tuple[str, ...], rotate: bool, token: bool) -> None:
    """Register branches (or reuse them) and print a new upload token for each, once."""
    from sqlalchemy import func, select, update

    from services.common.db import Database
    from services.common.naming import branch_key, collapse_spaces
    from services.common.tokens import new_token, token_digest
    from services.common.uploads import ApiToken, Branch

    db = Database(_settings().database_url)
    with db.session() as session:
        for name in names:
            key = branch_key(name)
            if not key or len(name) > 100 or not name.isprintable():
                raise click.ClickException(f"{name!r} is not a branch name (1-100 printable characters, with a "
                                           "letter or digit)")
            found = session.execute(select(Branch).where(Branch.branch_key == key)).scalar_one_or_none()
            if found is None:
                found = Branch(name=collapse_spaces(name), branch_key=key)
                session.add(found)
                session.flush()
            if rotate:
                session.execute(update(ApiToken).where(ApiToken.branch_id == found.id, ApiToken.revoked_at.is_(None))
                                .values(revoked_at=func.now()))
            if token:
                secret = new_token("cfb")
                session.add(ApiToken(name=f"branch:{found.name}", digest=token_digest(secret), scope="upload",
                                     branch_id=found.id))
                click.echo(secret if len(names) == 1 else f"{found.name}\t{secret}")
        session.commit()
    if not token:
        click.echo(f"registered {len(names)} branch(es)", err=True)


@click.group()
def user() -> None:
    """Users: who may sign in (every page's /signin, POST /v1/auth/token); roles in services/orders/permissions.py."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="admin: every branch; manager: runs one branch (--branch required); staff: takes orders")
@click.option("--branch", default=None, help="the one registered branch a manager (required) or a staff user works for")
def user_add(name: str, role: str, branch: str | None) -> None:
    """Add a user; the password is read from a hidden prompt, or from stdin when piped."""
    from services.common.db import Database
    from services.common.errors import ApiError
    from services.orders.api.users import create_user_record

    if sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    if not (0 < len(name.strip()) <= 100) or not name.isprintable():
        raise click.ClickException("the user name must be 1-100 printable characters")
    db = Database(_settings().database_url)
    with db.session() as session:
        try:
            created = create_user_record(session, username=name, password=password, role=role, branch=branch)
        except ApiError as exc:
            raise click.ClickException(f"{exc.message}: {exc.details}" if exc.code == "validation_error"
                                       else exc.message) from None
        session.commit()
        click.echo(f"user {created.username} ({role}{', ' + created.branch if created.branch else ''}) "
                   f"added with id {created.id}")


@click.group()
def uploads() -> None:
    """Operate on uploads."""


@uploads.command("retry")
@click.argument("upload_ids", nargs=-1, type=int)
@click.option("--status", type=click.Choice(upload_states.sources(upload_states.QUEUED)),
              help="retry every upload in this status")
def uploads_retry(upload_ids: tuple[int, ...], status: str | None) -> None:
    """Replay uploads that did not load, from their kept raw bytes. A loaded upload is never replayed
    (upload_states allows it no move back to queued): a replacing one would take away sales posted after it,
    and an append would only recount its rows as duplicates; to load a file again, retract it and post it
    again."""

    from services.common.db import Database
    from services.common.queue import producer

    if not upload_ids and not status:
        raise click.UsageError("give upload ids or --status")
    settings = _settings()
    db = Database(settings.database_url)
    with db.session() as session:
        # SKIP LOCKED: an upload being loaded right now is left to finish, not waited for.
        # (A loaded or retracted upload cannot be queued again: upload_states leaves it as it is.)
        rows = session.execute(upload_states.transition(upload_states.QUEUED, assign="""
            error = NULL, attempts = 0, enqueued_at = now()""", where="""
            id IN (SELECT id FROM ingest.upload
                   WHERE (id = ANY(:ids) OR status = :status) AND raw_purged_at IS NULL
                     AND retract_requested_at IS NULL
                   FOR UPDATE SKIP LOCKED)"""), {"ids": list(upload_ids), "status": status}).scalars().all()
        missing = sorted(set(upload_ids) - set(rows))
        session.commit()
    celery = producer(settings)
    for upload_id in sorted(rows):
        celery.send_task(task_names.PROCESS_UPLOAD, args=[upload_id], queue=settings.transform_queue)
        click.echo(f"upload {upload_id}: queued again")
    for upload_id in missing:
        click.echo(f"upload {upload_id}: not retried: not found, loaded already, being loaded right now, "
                   "retracted, or its raw bytes were purged (then post the file again)", err=True)
    if missing:
        sys.exit(1)


@uploads.command("retract")
@click.argument("upload_ids", nargs=-1, type=int, required=True)
@click.option("--reason", required=True, help="why the uploads are taken back (kept with each, for the audit)")
def uploads_retract(upload_ids: tuple[int, ...], reason: str) -> None:
    """Take uploads' sales out of the warehouse (except those another standing upload also contains).
    Each is retracted in its own transaction, after a load of it in progress; repeating is a no-op."""
    from sqlalchemy import text

    from services.common.db import Database
    from services.transform.corrections import retract_upload

    reason = reason.strip()
    if not (0 < len(reason) <= 500) or not reason.isprintable():
        raise click.UsageError("--reason must be 1-500 printable characters")
    db = Database(_settings().database_url)
    failed = False
    for upload_id in upload_ids:
        with db.session() as session:
            session.execute(text("""
                UPDATE ingest.upload SET retract_requested_at = now(), retract_requested_by = :by,
                       retract_reason = :reason, updated_at = now()
                WHERE id = :id AND retract_requested_at IS NULL"""),
                {"id": upload_id, "by": f"cli:{os.environ.get('USER', 'admin')}", "reason": reason})
            session.commit()
            outcome = retract_upload(session, upload_id)
            removed = session.execute(text("SELECT rows_retracted FROM ingest.upload WHERE id = :id"),
                                      {"id": upload_id}).scalar()
            session.commit()
        if outcome == "unknown":
            click.echo(f"upload {upload_id}: not found", err=True)
            failed = True
        elif outcome == "already_retracted":
            click.echo(f"upload {upload_id}: already retracted ({removed} sales taken out then)")
        else:
            click.echo(f"upload {upload_id}: retracted, {removed} sales taken out of the warehouse")
    if failed:
        sys.exit(1)


@click.group()
def customers() -> None:
    """Customers in the warehouse (known only by keyed pseudonyms)."""


@customers.command("forget")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def customers_forget(yes: bool) -> None:
    """Remove a customer's pseudonym from every warehouse table; their sales stay, without a customer.
    The name is read from a hidden prompt, or from stdin when piped (never an argument: it would show in
    `ps` and shell history), and is never printed or logged."""
    from services.common.db import Database
    from services.common.live_orders import customer_pseudonym
    from services.transform.corrections import forget_customer

    if sys.stdin.isatty():
        name = click.prompt("customer name (as on the receipts or orders)", hide_input=True)
    else:
        name = sys.stdin.readline().rstrip("\r\n")
    settings = _settings()
    key = customer_pseudonym(settings.secret_key.get_secret_value(), name)
    if key is None:
        raise click.UsageError("the name is empty")
    if sys.stdin.isatty() and not yes:
        click.confirm("remove this customer from the warehouse for good?", abort=True)
    db = Database(settings.database_url)
    with db.session() as session:
        changed = forget_customer(session, key, actor=f"cli:{os.environ.get('USER', 'admin')}")
        session.commit()
    click.echo(f"forgotten: {changed} sales no longer linked to a customer" if changed
               else "no sale in the warehouse has that customer (nothing changed; the request is logged)")


@click.group()
def warehouse() -> None:
    """The warehouse as a whole."""


@warehouse.command("check")
def warehouse_check() -> None:
    """Recompute every rollup and customer table from the sales facts and compare; exit 1 on a difference."""
    from services.common.db import Database
    from services.transform.rollups import DERIVED_TABLES, differences

    db = Database(_settings().database_url)
    with db.session() as session:
        found = differences(session)
    for table in DERIVED_TABLES:
        click.echo(f"{table}: {'exact' if table not in found else f'{found[table]} rows differ'}")
    if found:
        sys.exit(1)



@click.group()
def fields() -> None:
    """Unknown JSON fields whose free text the warehouse keeps (every other one keeps only numbers, booleans
    and short codes; see the README's Branch files)."""


def _field_path(name: str) -> str:
    from services.transform.records import JSON_FIELDS

    path = name.strip()
    if not 0 < len(path) <= 200 or not path.isprintable():
        raise click.BadParameter("1-200 printable characters: a field name, or a dotted path such as loyalty.note",
                                 param_hint="NAME")
    if path.split(".")[0] in JSON_FIELDS:
        raise click.BadParameter(f"{path.split('.')[0]!r} is a field cafeflow reads itself, not an unknown one",
                                 param_hint="NAME")
    return path


@fields.command("allow")
@click.argument("names", nargs=-1, required=True)
def fields_allow(names: tuple[str, ...]) -> None:
    """Keep the free text of these unknown fields (and of the fields inside them) in loads from now on; long
    numbers, e-mail addresses and the customer's name are still masked. Loaded sales are not changed."""
    from sqlalchemy.dialects.postgresql import insert

    from services.common.db import Database
    from services.common.uploads import ExtraFieldAllowed
    from services.transform.records import PERSONAL_FIELD

    paths = [_field_path(name) for name in names]
    db = Database(_settings().database_url)
    with db.session() as session:
        session.execute(insert(ExtraFieldAllowed).values([{"path": p} for p in paths]).on_conflict_do_nothing())
        session.commit()
    for path in paths:
        if PERSONAL_FIELD.search(path):
            click.echo(f"warning: {path} looks like personal data; its free text will reach the warehouse", err=True)
    click.echo(f"allow-listed {len(paths)} field(s)", err=True)


@fields.command("disallow")
@click.argument("names", nargs=-1, required=True)
def fields_disallow(names: tuple[str, ...]) -> None:
    """Withhold these fields' free text again in loads from now on (loaded sales are not changed)."""
    from sqlalchemy import delete

    from services.common.db import Database
    from services.common.uploads import ExtraFieldAllowed

    db = Database(_settings().database_url)
    with db.session() as session:
        removed = set(session.execute(delete(ExtraFieldAllowed).where(ExtraFieldAllowed.path.in_(names))
                                      .returning(ExtraFieldAllowed.path)).scalars())
        session.commit()
    missing = [name for name in names if name not in removed]
    for name in missing:
        click.echo(f"{name}: not allow-listed", err=True)
    if missing:
        sys.exit(1)


@fields.command("list")
def fields_list() -> None:
    """The allow-listed fields, one per line."""
    from sqlalchemy import select

    from services.common.db import Database
    from services.common.uploads import ExtraFieldAllowed

    db = Database(_settings().database_url)
    with db.session() as session:
        for path in session.execute(select(ExtraFieldAllowed.path).order_by(ExtraFieldAllowed.path)).scalars():
            click.echo(path)


ADMIN_GROUPS = (token, db, branch, user, uploads, fields, customers, warehouse)
