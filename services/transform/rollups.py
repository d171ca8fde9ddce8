"""Every warehouse table derived from the sales facts, each defined once, here.

A derived table is a function of the sales that stand. Each definition below generates the three
statements every path needs, so adding a sale and taking one away can never disagree:

- `apply_delta`: adds the sales in the temporary table `delta_sale` (and their product lines in
  `delta_line`) with `sign` +1, and takes away those with `sign` -1. File loads, live sales, backfills,
  replacements, retractions, refunds and forgetting a customer all fill the delta and call it once.
- `rebuild_query`: the table recomputed from `warehouse.fact_transaction` alone. Tests and
  `cafeflow warehouse check` compare every table with it (`differences`).

Three kinds of definition:
- `Sum`: counts and sums grouped by a key. A delta adds `sum(sign * measure)` to each key's row (one
  upsert, rows locked in key order so concurrent loads cannot deadlock); rows whose count falls to zero
  are deleted, as a rebuild would not have them.
- `Distinct`: the set of keys some sale has (which customers bought in which period). Adding inserts the
  keys; taking away deletes a key only when no remaining sale still has it, which the fact table's
  customer index answers per customer.
- `First`: each customer's first sale (a minimum, which cannot be subtracted): taking away recomputes it
  from the customer's remaining sales.

A new derived table is one more entry in `DEFINITIONS` (and a migration creating the table).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

# UK-local day and hour of a sale: branch files are UK time, and every report groups by it.
LOCAL_DATE = "({ts} AT TIME ZONE 'Europe/London')::date"
LOCAL_HOUR = "extract(hour FROM {ts} AT TIME ZONE 'Europe/London')::smallint"

# The delta: sales being added (sign +1) or taken away (sign -1) in this transaction, with the columns
# every definition groups by, and their product lines (one row per sale and product). Created once per
# database session, emptied at every commit.
TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS delta_sale (
    id bigint, sign smallint, upload_id bigint, source_line integer, natural_key uuid, branch_id integer,
    occurred_at timestamptz, local_date date, local_hour smallint, payment_method text, source text,
    total numeric(12, 2), items bigint, customer_key uuid
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS delta_line (
    id bigint, sign smallint, local_date date, local_hour smallint, branch_id integer, source text,
    product_id integer, quantity bigint, revenue numeric(16, 2)
) ON COMMIT DELETE ROWS;
"""

# The same columns computed from the fact tables: what a delta from stored sales holds, and what every
# rebuild reads. `where` restricts the sales (a list of ids, a customer, or nothing); `items` can be left
# out (NULL) where only the key columns matter.
def fact_sales(*, sign: int = 1, where: str = "", items: bool = True) -> str:
    basket = ("coalesce((SELECT sum(i.quantity) FROM warehouse.fact_transaction_item i "
              "WHERE i.transaction_id = f.id), 0)") if items else "NULL::bigint"
    return f"""
SELECT f.id, {int(sign)}::smallint AS sign, f.upload_id, f.source_line, f.natural_key, f.branch_id, f.occurred_at,
       {LOCAL_DATE.format(ts="f.occurred_at")} AS local_date, {LOCAL_HOUR.format(ts="f.occurred_at")} AS local_hour,
       f.payment_method, f.source, f.total, {basket} AS items, f.customer_key
FROM warehouse.fact_transaction f
{where}"""


def fact_lines(*, sign: int = 1, where: str = "") -> str:
    return f"""
SELECT f.id, {int(sign)}::smallint AS sign,
       {LOCAL_DATE.format(ts="f.occurred_at")} AS local_date, {LOCAL_HOUR.format(ts="f.occurred_at")} AS local_hour,
       f.branch_id, f.source, i.product_id, sum(i.quantity) AS quantity, sum(i.quantity * i.unit_price) AS revenue
FROM warehouse.fact_transaction f JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
{where}
GROUP BY f.id, i.product_id"""


# The periods a sale counts in for the customer tables: its UK-local day, ISO week (Monday) and month.
_PERIODS = """CROSS JOIN LATERAL (VALUES ('day', s.local_date),
                                ('week', date_trunc('week', s.local_date)::date),
                                ('month', date_trunc('month', s.local_date)::date)) p(period, period_start)"""


# A period of the customer tables as a timestamptz range (UK-local midnights), for the customer index.
_PERIOD_START = "(d.period_start::timestamp AT TIME ZONE 'Europe/London')"
_PERIOD_END = ("((d.period_start + CASE d.period WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '7 days' "
               "ELSE interval '1 month' END)::timestamp AT TIME ZONE 'Europe/London')")

# The customer tables' lock (two-key advisory form, apart from the branch locks' space). Taking a customer
# key away checks that no standing sale still has it, and a load of another branch (which the branch locks
# do not serialise) may be adding such a sale right now, unseen until it commits. So every delta that adds
# holds this lock shared and one that takes customers away holds it alone: the check then runs after every
# such load has committed, or before it adds its keys.
CUSTOMER_LOCK_SPACE = 0x43464355      # "CFCU"


def lock_customer_tables(session: Session, *, exclusive: bool) -> None:
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(text(f"SELECT {function}({CUSTOMER_LOCK_SPACE}, 0)"))


@dataclass(frozen=True)
class Sum:
    table: str
    lines: bool                           # grouped over product lines (delta_line) rather than sales
    key: tuple[str, ...]
    measures: tuple[tuple[str, str], ...]  # (column, expression summed over the relation's rows)
    count: str                            # the measure that is zero exactly when no sale contributes

    def delta_statements(self, taking_away: bool) -> list[str]:
        relation = "delta_line" if self.lines else "delta_sale"
        keys = ", ".join(self.key)
        positions = ", ".join(str(n) for n in range(1, len(self.key) + 1))
        columns = ", ".join(column for column, _ in self.measures)
        sums = ", ".join(f"sum({expression})" for _, expression in self.measures)
        updates = ", ".join(f"{column} = r.{column} + EXCLUDED.{column}" for column, _ in self.measures)
        statements = [f"""
INSERT INTO warehouse.{self.table} AS r ({keys}, {columns})
SELECT {keys}, {sums} FROM {relation} GROUP BY {positions} ORDER BY {positions}
ON CONFLICT ({keys}) DO UPDATE SET {updates}"""]
        if taking_away:
            match = " AND ".join(f"r.{k} = d.{k}" for k in self.key)
            statements.append(f"""
DELETE FROM warehouse.{self.table} r USING (SELECT DISTINCT {keys} FROM {relation} WHERE sign < 0) d
WHERE {match} AND r.{self.count} = 0""")
        return statements

    def rebuild_query(self) -> str:
        relation = fact_lines() if self.lines else fact_sales()
        sums = ", ".join(f"sum({expression}) AS {column}" for column, expression in self.measures)
        return (f"SELECT {', '.join(self.key)}, {sums} FROM ({relation}) s "
                f"GROUP BY {', '.join(self.key)}")


@dataclass(frozen=True)
class Distinct:
    """The distinct keys of the sales with a customer, per period."""
    table: str
    key: tuple[str, ...]                  # columns of delta_sale, plus period and period_start

    def _keys(self, alias: str = "") -> str:
        return ", ".join(f"{alias}{k}" if k not in ("period", "period_start") else f"p.{k}" for k in self.key)

    def delta_statements(self, taking_away: bool) -> list[str]:
        keys = ", ".join(self.key)
        positions = ", ".join(str(n) for n in range(1, len(self.key) + 1))
        statements = [f"""
INSERT INTO warehouse.{self.table} ({keys})
SELECT DISTINCT {self._keys('s.')} FROM delta_sale s {_PERIODS}
WHERE s.sign > 0 AND s.customer_key IS NOT NULL
ORDER BY {positions}
ON CONFLICT DO NOTHING"""]
        if taking_away:
            match = " AND ".join(f"t.{k} = d.{k}" for k in self.key)
            same = "".join(f" AND f.{k} = d.{k}" for k in self.key if k not in ("period", "period_start"))
            # A key stays while any remaining sale of the customer has it: a probe of the customer index
            # over the period's time range only (a regular's whole history would be read otherwise). The
            # probe runs in a materialised CTE because inside the DELETE's own join the fact table would get
            # a row mark, which rules out index-only scans (three to ten times slower on a big warehouse).
            statements.append(f"""
WITH gone AS MATERIALIZED (
    SELECT d.* FROM (SELECT DISTINCT {self._keys('s.')} FROM delta_sale s {_PERIODS}
                     WHERE s.sign < 0 AND s.customer_key IS NOT NULL) d
    WHERE NOT EXISTS (
        SELECT 1 FROM warehouse.fact_transaction f
        WHERE f.customer_key = d.customer_key{same}
          AND f.occurred_at >= {_PERIOD_START} AND f.occurred_at < {_PERIOD_END}))
DELETE FROM warehouse.{self.table} t USING gone d WHERE {match}""")
        return statements

    def rebuild_query(self) -> str:
        return (f"SELECT DISTINCT {self._keys('s.')} FROM ({fact_sales(items=False)}) s {_PERIODS} "
                "WHERE s.customer_key IS NOT NULL")


@dataclass(frozen=True)
class First:
    """Each customer's first sale, any branch and source: its time and UK-local day."""
    table: str

    def delta_statements(self, taking_away: bool) -> list[str]:
        statements = [f"""
INSERT INTO warehouse.{self.table} AS c (customer_key, first_at, first_local_date)
SELECT DISTINCT ON (customer_key) customer_key, occurred_at, local_date
FROM delta_sale s WHERE s.sign > 0 AND s.customer_key IS NOT NULL
  -- Most customers are known already: skip them here, because ON CONFLICT DO UPDATE locks the existing
  -- row even when its WHERE is false, which would queue every concurrent load behind this one.
  AND NOT EXISTS (SELECT 1 FROM warehouse.{self.table} k
                  WHERE k.customer_key = s.customer_key AND k.first_at <= s.occurred_at)
ORDER BY customer_key, occurred_at
ON CONFLICT (customer_key) DO UPDATE
SET first_at = EXCLUDED.first_at, first_local_date = EXCLUDED.first_local_date
WHERE EXCLUDED.first_at < c.first_at"""]
        if taking_away:
            # A minimum cannot be subtracted: recompute it from the customer's remaining sales.
            affected = "SELECT DISTINCT customer_key FROM delta_sale WHERE sign < 0 AND customer_key IS NOT NULL"
            statements.append(f"""
DELETE FROM warehouse.{self.table} c USING ({affected}) a
WHERE c.customer_key = a.customer_key
  AND NOT EXISTS (SELECT 1 FROM warehouse.fact_transaction f WHERE f.customer_key = a.customer_key)""")
            statements.append(f"""
UPDATE warehouse.{self.table} c SET first_at = m.occurred_at, first_local_date = m.local_date
FROM (SELECT DISTINCT ON (s.customer_key) s.customer_key, s.occurred_at, s.local_date
      FROM ({affected}) a CROSS JOIN LATERAL (
          {fact_sales(where='WHERE f.customer_key = a.customer_key', items=False)}
          ORDER BY f.occurred_at LIMIT 1) s
      ORDER BY s.customer_key) m
WHERE c.customer_key = m.customer_key AND (c.first_at <> m.occurred_at OR c.first_local_date <> m.local_date)""")
        return statements

    def rebuild_query(self) -> str:
        return ("SELECT DISTINCT ON (customer_key) customer_key, occurred_at AS first_at, "
                "local_date AS first_local_date "
                f"FROM ({fact_sales(items=False)}) s WHERE customer_key IS NOT NULL "
                "ORDER BY customer_key, occurred_at")


_SALE_MEASURES = (("transactions", "sign"), ("items", "sign * items"), ("revenue", "sign * total"))
_PRODUCT_MEASURES = (("transactions", "sign"), ("quantity", "sign * quantity"), ("revenue", "sign * revenue"))

# Order matters only for readability: each statement is independent of the others.
DEFINITIONS: tuple[Sum | Distinct | First, ...] = (
    Sum("rollup_sales_hour", False, ("local_date", "local_hour", "branch_id", "payment_method", "source"),
        _SALE_MEASURES, "transactions"),
    Sum("rollup_sales_hour_chain", False, ("local_date", "local_hour", "source"), _SALE_MEASURES, "transactions"),
    Sum("rollup_sales_day", False, ("local_date", "branch_id", "payment_method", "source"), _SALE_MEASURES,
        "transactions"),
    Sum("rollup_branch_day", False, ("local_date", "branch_id", "source"), _SALE_MEASURES, "transactions"),
    # A product's sales by hour and its peak hours (its weekdays are rollup_product_day's). Keyed product first:
    # those questions read one product's hours of a range; the key's order is also the upsert's lock order.
    Sum("rollup_product_hour", True, ("product_id", "local_date", "local_hour", "branch_id", "source"),
        _PRODUCT_MEASURES, "transactions"),
    # transactions = sales containing the product (one delta_line row per sale and product).
    Sum("rollup_product_day", True, ("local_date", "branch_id", "product_id", "source"), _PRODUCT_MEASURES,
        "transactions"),
    Sum("rollup_product_day_chain", True, ("local_date", "product_id", "source"), _PRODUCT_MEASURES,
        "transactions"),
    First("customer_first_seen"),
    Distinct("customer_period", ("period", "period_start", "source", "customer_key")),
    Distinct("customer_period_branch", ("branch_id", "period", "period_start", "source", "customer_key")),
)
DERIVED_TABLES = tuple(d.table for d in DEFINITIONS)


def create_temp_tables(session: Session) -> None:
    session.execute(text(TEMP_TABLES))


def add_stored_sales(session: Session, ids_query: str, params: dict | None = None, *, sign: int) -> int:
    """Puts stored sales into the delta (sign +1 to add them, -1 before they are deleted); `ids_query`
    selects their ids. Returns how many."""
    where = f"WHERE f.id IN ({ids_query})"
    count = session.execute(text(f"INSERT INTO delta_sale {fact_sales(sign=sign, where=where)}"), params or {}).rowcount
    session.execute(text(f"INSERT INTO delta_line {fact_lines(sign=sign, where=where)}"), params or {})
    return count


def apply_delta(session: Session, lap: Callable[[str], None] | None = None) -> None:
    """Brings every derived table up to date with the delta, then empties the delta. Call it after the
    facts have been inserted and deleted: taking away checks the remaining facts. `lap(table)`, if given,
    is called after each table (the loader's step timings)."""
    taking_away, customers_leave = session.execute(text(
        "SELECT EXISTS (SELECT FROM delta_sale WHERE sign < 0), "
        "       EXISTS (SELECT FROM delta_sale WHERE sign < 0 AND customer_key IS NOT NULL)")).one()
    lock_customer_tables(session, exclusive=customers_leave)
    if taking_away:
        # The temporary tables have no statistics: without them the deletes below are planned for an
        # empty delta and read whole rollups (seconds on a big warehouse) instead of probing their keys.
        session.execute(text("ANALYZE delta_sale; ANALYZE delta_line"))
    for definition in DEFINITIONS:
        for statement in definition.delta_statements(taking_away):
            session.execute(text(statement))
        if lap is not None:
            lap(definition.table)
    session.execute(text("DELETE FROM delta_sale; DELETE FROM delta_line;"))


def differences(session: Session, tables: tuple[str, ...] = DERIVED_TABLES) -> dict[str, int]:
    """Rows by which each derived table differs from its definition recomputed from the facts (rows it
    has that the definition lacks, plus the reverse): empty when the warehouse is exact."""
    found = {}
    for definition in DEFINITIONS:
        if definition.table not in tables:
            continue
        columns = _columns(definition)
        stored = f"SELECT {columns} FROM warehouse.{definition.table}"
        rebuilt = f"SELECT {columns} FROM ({definition.rebuild_query()}) rebuilt"
        count = session.execute(text(
            f"SELECT (SELECT count(*) FROM ({stored} EXCEPT ALL {rebuilt}) a) "
            f"     + (SELECT count(*) FROM ({rebuilt} EXCEPT ALL {stored}) b)")).scalar()
        if count:
            found[definition.table] = count
    return found


def _columns(definition: Sum | Distinct | First) -> str:
    if isinstance(definition, Sum):
        return ", ".join((*definition.key, *(column for column, _ in definition.measures)))
    if isinstance(definition, Distinct):
        return ", ".join(definition.key)
    return "customer_key, first_at, first_local_date"
