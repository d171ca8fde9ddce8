"""Taking sales back out of the warehouse: a replacing upload, a retracted upload, a refund, a forgotten
customer. Every path fills the rollups' delta (services/transform/rollups.py) and applies it once, so the
derived tables stay exactly what a rebuild from the standing sales would give.

Which file sales stand is decided by `warehouse.upload_sale`: every upload that contained a sale claims it
(the load that added it, and every later load for which it was a duplicate). A file sale stands while some
claim remains. A retraction removes one upload's claims; a replacing upload removes every other upload's
claims on the branch-days it covers. Sales left without a claim are taken away.

Concurrency: loads take a shared lock per branch they write, corrections an exclusive one (transaction-level
advisory locks, always in branch id order), so a correction never interleaves with a load of the same branch:
every outcome is that of some serial order. Two retractions of one upload serialise on its row.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common import upload_states
from services.common.upload_states import RETRACTED
from services.transform import rollups
from services.transform.rollups import LOCAL_DATE

# Advisory lock space of the per-branch locks: (this, branch id) in the two-key form, which cannot collide
# with the one-key locks of migrations and idempotency keys.
BRANCH_LOCK_SPACE = 0x43464252      # "CFBR"

# A UK-local day as a timestamptz range, so a branch-day's sales come from the (branch_id, occurred_at) index.
_DAY_START = "(d.local_date::timestamp AT TIME ZONE 'Europe/London')"
_DAY_END = "((d.local_date + 1)::timestamp AT TIME ZONE 'Europe/London')"
_IN_DAY = f"f.branch_id = d.branch_id AND f.occurred_at >= {_DAY_START} AND f.occurred_at < {_DAY_END}"

_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS replaced_day (branch_id integer, local_date date) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS released_sale (id bigint) ON COMMIT DELETE ROWS;
"""


def lock_branches(session: Session, branch_ids_query: str, params: dict | None = None, *, exclusive: bool) -> None:
    """Locks the branches `branch_ids_query` selects until the transaction ends, in id order (no deadlock
    between two transactions that lock several)."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(text(f"""
        SELECT count({function}({BRANCH_LOCK_SPACE}, id))
        FROM (SELECT DISTINCT id FROM ({branch_ids_query}) ids(id) WHERE id IS NOT NULL ORDER BY id) ordered"""),
        params or {})


def take_away(session: Session, ids_query: str, params: dict | None = None) -> int:
    """Deletes the sales `ids_query` selects (facts, items, claims), after putting them into the delta
    with sign -1. The caller applies the delta (`rollups.apply_delta`). Returns how many."""
    rollups.create_temp_tables(session)
    count = rollups.add_stored_sales(session, ids_query, params, sign=-1)
    if count:
        session.execute(text("""
            DELETE FROM warehouse.fact_transaction_item i USING delta_sale d
            WHERE d.sign < 0 AND i.transaction_id = d.id;
            DELETE FROM warehouse.upload_sale c USING delta_sale d WHERE d.sign < 0 AND c.transaction_id = d.id;
            DELETE FROM warehouse.fact_transaction f USING delta_sale d WHERE d.sign < 0 AND f.id = d.id;
        """))
    return count


def bump_version(session: Session) -> None:
    """The reporting cache keys on this: the next request after a change recomputes."""
    session.execute(text("UPDATE warehouse.version SET version = version + 1, updated_at = now()"))


def log_correction(session: Session, kind: str, *, actor: str | None = None, upload_id: int | None = None,
                   order_id: int | None = None, sales_removed: int = 0, sales_changed: int = 0) -> None:
    """The audit: what, when, who and how many, never which customer. A replacement's actor is whoever
    posted the file."""
    session.execute(text("""
        INSERT INTO warehouse.correction_log (kind, actor, upload_id, order_id, sales_removed, sales_changed)
        VALUES (:kind, coalesce(:actor, (SELECT submitted_by FROM ingest.upload WHERE id = :upload_id), 'unknown'),
                :upload_id, :order_id, :removed, :changed)"""),
        {"kind": kind, "actor": actor, "upload_id": upload_id, "order_id": order_id, "removed": sales_removed,
         "changed": sales_changed})


def supersede_branch_days(session: Session, upload_id: int) -> int:
    """For a replacing upload whose sales are staged, inserted and claimed: every other upload's claims on
    the file sales of the branch-days it covers end, and the sales it lacks are taken away. Call it with the
    upload's branches locked exclusively. Returns how many sales were taken away."""
    session.execute(text(_TEMP_TABLES))
    session.execute(text(f"""
        INSERT INTO replaced_day (branch_id, local_date)
        SELECT DISTINCT b.id, {LOCAL_DATE.format(ts="to_timestamp(s.occurred_epoch)")}
        FROM stage_sale s JOIN warehouse.dim_branch b ON b.branch_key = s.branch_key
        WHERE s.upload_id = :upload_id"""), {"upload_id": upload_id})
    # Statistics for the temporary table, so the joins below probe the (branch_id, occurred_at) index
    # for a few branch-days rather than being planned for thousands and scanning the fact table.
    session.execute(text("ANALYZE replaced_day"))
    session.execute(text(f"""
        DELETE FROM warehouse.upload_sale c USING warehouse.fact_transaction f, replaced_day d
        WHERE c.transaction_id = f.id AND c.upload_id <> :upload_id AND f.source = 'file' AND {_IN_DAY}"""),
        {"upload_id": upload_id})
    return take_away(session, f"""
        SELECT f.id FROM warehouse.fact_transaction f JOIN replaced_day d ON {_IN_DAY}
        WHERE f.source = 'file' AND NOT EXISTS (SELECT FROM warehouse.upload_sale c WHERE c.transaction_id = f.id)""")


def retract_upload_sales(session: Session, upload_id: int) -> int:
    """Ends the upload's claims and takes away the sales no other upload still claims; applies the delta.
    The caller holds the upload's row lock and commits. Returns how many sales were taken away."""
    session.execute(text(_TEMP_TABLES))
    lock_branches(session, """
        SELECT DISTINCT f.branch_id FROM warehouse.upload_sale c JOIN warehouse.fact_transaction f
        ON f.id = c.transaction_id WHERE c.upload_id = :upload_id""", {"upload_id": upload_id}, exclusive=True)
    session.execute(text("""
        WITH released AS (DELETE FROM warehouse.upload_sale WHERE upload_id = :upload_id RETURNING transaction_id)
        INSERT INTO released_sale (id) SELECT transaction_id FROM released"""), {"upload_id": upload_id})
    session.execute(text("ANALYZE released_sale"))
    removed = take_away(session, """
        SELECT r.id FROM released_sale r
        WHERE NOT EXISTS (SELECT FROM warehouse.upload_sale c WHERE c.transaction_id = r.id)""")
    rollups.apply_delta(session)
    if removed:
        bump_version(session)
    return removed


def forget_customer(session: Session, customer_key: str, *, actor: str = "admin") -> int:
    """Removes a customer pseudonym from every warehouse table (and from the live-order hand-offs that carry
    it); the sales stay, without a customer. Returns how many sales had it."""
    rollups.create_temp_tables(session)
    # The live hand-offs first: a delivery loading right now either committed its sale before this
    # (found below) or reads the payload after, without the pseudonym (the row lock orders the two).
    session.execute(text("""
        UPDATE orders.outbox SET payload = jsonb_set(payload, '{customer_key}', 'null'::jsonb)
        WHERE payload->>'customer_key' = :hex"""), {"hex": customer_key.replace("-", "")})
    lock_branches(session, "SELECT DISTINCT branch_id FROM warehouse.fact_transaction WHERE customer_key = "
                           "CAST(:key AS uuid)", {"key": customer_key}, exclusive=True)
    # Before reading the customer's sales: a load of any branch adding one commits first or waits.
    rollups.lock_customer_tables(session, exclusive=True)
    # The sales leave every derived table with the customer and come back without one: the sums net to
    # zero, and the customer's periods and first sale go, because no remaining sale has the pseudonym.
    changed = rollups.add_stored_sales(session, "SELECT id FROM warehouse.fact_transaction "
                                                "WHERE customer_key = CAST(:key AS uuid)", {"key": customer_key},
                                       sign=-1)
    session.execute(text("UPDATE warehouse.fact_transaction SET customer_key = NULL "
                         "WHERE customer_key = CAST(:key AS uuid)"), {"key": customer_key})
    rollups.add_stored_sales(session, "SELECT id FROM delta_sale WHERE sign < 0", sign=1)
    rollups.apply_delta(session)
    bump_version(session)
    log_correction(session, "forget", actor=actor, sales_changed=changed)
    return changed


def retract_upload(session: Session, upload_id: int) -> str:
    """Carries out a requested retraction inside the caller's transaction; the caller commits. Waits for a
    load of the upload in progress (its row lock), so a retraction always comes after the load. Returns
    the outcome: retracted, already_retracted, not_requested or unknown."""
    row = session.execute(text("""
        SELECT id, status, retract_requested_at, retract_requested_by FROM ingest.upload WHERE id = :id FOR UPDATE"""),
        {"id": upload_id}).first()
    if row is None:
        return "unknown"
    if row.status == RETRACTED:
        return "already_retracted"
    if row.retract_requested_at is None:
        return "not_requested"
    removed = retract_upload_sales(session, upload_id)
    upload_states.move(session, upload_id, RETRACTED, assign="""
        retracted_at = now(), rows_retracted = :removed, finished_at = coalesce(finished_at, now()),
        -- no longer "these bytes were posted before": the same file posted again loads again
        poster_key = poster_key || ' retracted ' || id""", params={"removed": removed})
    log_correction(session, "retract", actor=row.retract_requested_by, upload_id=upload_id, sales_removed=removed)
    return "retracted"
