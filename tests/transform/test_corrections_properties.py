"""Issue 13's stateful property: random sequences of appends, replacements, retractions, live deliveries, refunds
and forgotten customers, over generated till files, on the real database. After every step:

- the standing file sales are exactly those a model of the uploads says (a sale stands while an upload that
  contained it stands and no later replacement of its branch-day left it out);
- every rollup and customer table equals its definition recomputed from the facts;
- the reports (sales by branch, day, product and payment method, peak hours, customers) equal plain SQL over
  the facts, through the reporting cache (which must see every correction on the next request).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from decimal import Decimal

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, \
    run_state_machine_as_test
from sqlalchemy.orm import Session

from services.common import task_names
from services.common.live_orders import customer_pseudonym
from services.tools.generate import generate
from tests.reporting.test_reports_real_files import CUSTOMERS_PLAIN, LOCAL, ROW_KEYS, figures, plain, plain_sales
from tests.support import ADMIN_TOKEN, SECRET_KEY, reset_state

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Customers who come back (across days and branches), so new vs returning and first sales are exercised.
REGULARS = ("Ann Lee", "Bo Chan", "Cy Dunn")


def _pool(tmp_path, start: dt.date) -> dict[tuple[str, str], list[str]]:
    """Lines of two branches over two days, 6 sales each, with a regular customer on every other line;
    plus each line's 'corrected' twin (rung up a minute later: another sale of the same branch-day)."""
    lines = {}
    for path in generate(tmp_path, 2, 2, "a", seed=13, start=start, transactions_per_day=6):
        rows = list(csv.reader(io.StringIO(path.read_text())))
        for n, row in enumerate(rows):
            if n % 2 == 0:
                row[2] = REGULARS[n // 2 % len(REGULARS)]
        day_lines = []
        for row in rows:
            day_lines.append(_line(row))
            twin = list(row)
            stamp = dt.datetime.strptime(row[0], "%d/%m/%Y %H:%M")
            twin[0] = (stamp + dt.timedelta(minutes=1)).strftime("%d/%m/%Y %H:%M") if stamp.minute < 59 else row[0]
            twin[5] = "CARD" if row[5] == "CASH" else "CASH"
            twin[6] = "" if twin[5] == "CASH" else "4111111111111111"
            day_lines.append(_line(twin))
        lines[(rows[0][1], rows[0][0][:10])] = day_lines
    return lines


def _line(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    return out.getvalue()


def _sale(line: str) -> tuple:
    """What the warehouse should hold for a line: branch, UK-local minute, total, payment."""
    row = next(csv.reader(io.StringIO(line)))
    return row[1], dt.datetime.strptime(row[0], "%d/%m/%Y %H:%M"), Decimal(row[4]), row[5]


def _identities(lines: list[str]) -> list[tuple[str, int]]:
    """A sale's identity in a file: its line and its repeat number there (the same line twice is two sales)."""
    seen: Counter = Counter()
    out = []
    for line in lines:
        seen[line] += 1
        out.append((line, seen[line]))
    return out


def test_corrections_keep_every_figure_exact(engine, redis_client, settings, celery_app, tmp_path):
    from services.ingest.app import create_app as ingest_app
    from services.orders.app import create_app as orders_app
    from services.reporting.app import create_app as reporting_app
    from services.transform.rollups import differences

    start = dt.date.today() - dt.timedelta(days=20)
    pool = _pool(tmp_path, start)
    branch_days = sorted(pool)
    period = {"from": start.isoformat(), "to": dt.date.today().isoformat()}

    # One app each for the whole run (a new app per example would open new connection pools).
    ingest, orders, reporting = (ingest_app(settings).test_client(), orders_app(settings).test_client(),
                                 reporting_app(settings).test_client())

    def run(name: str, *args):
        result = celery_app.tasks[name].apply(args=list(args))
        assert result.successful(), result.result
        return result.result

    class Corrections(RuleBasedStateMachine):
        @initialize()
        def fresh_warehouse(self):
            reset_state(engine, redis_client)
            self.ingest, self.orders, self.reporting = ingest, orders, reporting
            self.claims: dict[int, set] = {}             # standing upload -> identities it claims
            self.posted: dict[tuple[bytes, str], int] = {}   # (bytes, mode) of standing uploads -> id
            self.lines_of: dict[tuple[str, int], str] = {}
            self.live: dict[int, Decimal] = {}           # delivered, unrefunded order -> total
            self.product = None
            self.forgotten: str | None = None

        # --- operations -----------------------------------------------------------------------
        @rule(data=st.data())
        def append_a_file(self, data):
            self._post_file(data, "append")

        @rule(data=st.data())
        def replace_branch_days(self, data):
            self._post_file(data, "replace")

        def _post_file(self, data, mode):
            days = data.draw(st.lists(st.sampled_from(branch_days), min_size=1, max_size=2, unique=True))
            lines = []
            for day in days:
                picks = data.draw(st.lists(st.integers(0, len(pool[day]) - 1), min_size=1, max_size=8))
                lines += [pool[day][i] for i in picks]
            content = "".join(lines).encode()
            response = self.ingest.post(f"/v1/uploads?mode={mode}", headers=ADMIN,
                                        data={"file": (io.BytesIO(content), "generated.csv")})
            assert response.status_code in (200, 202), response.get_json()
            upload_id = response.get_json()["id"]
            if (content, mode) in self.posted:
                assert response.status_code == 200 and upload_id == self.posted[(content, mode)]
                return
            assert response.status_code == 202
            assert run(task_names.PROCESS_UPLOAD, upload_id) == "loaded"
            mine = set(_identities(lines))
            if mode == "replace":
                covered = {(_sale(line)[0], _sale(line)[1].date()) for line in lines}
                for other in self.claims.values():
                    other -= {s for s in other if (_sale(s[0])[0], _sale(s[0])[1].date()) in covered}
            self.claims[upload_id] = mine
            self.posted[(content, mode)] = upload_id
            body = self.ingest.get(f"/v1/uploads/{upload_id}", headers=ADMIN).get_json()
            assert body["rows_loaded"] + body["rows_duplicate"] == len(lines) and body["rows_rejected"] == 0

        @precondition(lambda self: self.claims)
        @rule(data=st.data())
        def retract_an_upload(self, data):
            upload_id = data.draw(st.sampled_from(sorted(self.claims)))
            response = self.ingest.delete(f"/v1/uploads/{upload_id}", json={"reason": "property test"},
                                          headers=ADMIN)
            assert response.status_code == 202
            assert run(task_names.RETRACT_UPLOAD, upload_id) == "retracted"
            del self.claims[upload_id]
            self.posted = {k: v for k, v in self.posted.items() if v != upload_id}

        @precondition(lambda self: len(self.live) < 3)
        @rule(quantity=st.integers(1, 3), regular=st.sampled_from(REGULARS))
        def deliver_a_live_order(self, quantity, regular):
            if self.product is None:
                self.product = self._post("/v1/products", {"name": "Latte", "size": "Large", "flavour": None,
                                                           "price": "2.45"})
                self.courier = self._post("/v1/couriers", {"name": "Cy", "phone": "07700900002", "branch": "Leeds"})
            order = self._post("/v1/orders", {
                "branch": "Leeds", "customer_name": regular, "customer_address": "1 Street",
                "customer_phone": "07700 900123", "payment_method": "CARD", "courier_id": self.courier["id"],
                "items": [{"product_id": self.product["id"], "quantity": quantity}]})
            for status in ("out_for_delivery", "delivered"):
                moved = self.orders.post(f"/v1/orders/{order['id']}/status", json={"status": status},
                                         headers={**ADMIN, "If-Match": "*"})
                assert moved.status_code == 200, moved.get_json()
            assert run(task_names.LOAD_LIVE_ORDER, self._outbox(order["id"], "delivery")) == "loaded"
            self.live[order["id"]] = Decimal("2.45") * quantity

        @precondition(lambda self: self.live)
        @rule(data=st.data())
        def refund_a_live_order(self, data):
            order_id = data.draw(st.sampled_from(sorted(self.live)))
            moved = self.orders.post(f"/v1/orders/{order_id}/status", json={"status": "refunded", "reason": "test"},
                                     headers={**ADMIN, "If-Match": "*"})
            assert moved.status_code == 200, moved.get_json()
            outbox = self._outbox(order_id, "refund")
            assert run(task_names.LOAD_LIVE_ORDER, outbox) == "refunded"
            assert run(task_names.LOAD_LIVE_ORDER, outbox) == "duplicate"
            del self.live[order_id]

        @rule(name=st.sampled_from(REGULARS))
        def forget_a_customer(self, name):
            from services.transform.corrections import forget_customer

            with Session(engine) as session:
                forget_customer(session, customer_pseudonym(SECRET_KEY, name), actor="test")
                session.commit()
            self.forgotten = name

        # --- checks ---------------------------------------------------------------------------
        @invariant()
        def derived_tables_equal_their_definitions(self):
            with Session(engine) as session:
                assert differences(session) == {}

        @invariant()
        def the_standing_sales_are_those_of_the_standing_claims(self):
            standing = set().union(*self.claims.values())        # a sale two uploads contain is one sale
            expected = Counter(_sale(line) for line, _ in standing)
            rows = plain(engine, f"""
                SELECT b.name, {LOCAL}, f.total, f.payment_method FROM warehouse.fact_transaction f
                JOIN warehouse.dim_branch b ON b.id = f.branch_id WHERE f.source = 'file'""")
            assert Counter((r[0], r[1], r[2], r[3]) for r in rows) == expected
            live = plain(engine, "SELECT count(*), coalesce(sum(total), 0) FROM warehouse.fact_transaction "
                                 "WHERE source = 'live'")[0]
            assert (live[0], live[1]) == (len(self.live), sum(self.live.values(), Decimal(0)))
            if self.forgotten is not None:
                gone = plain(engine, "SELECT count(*) FROM warehouse.fact_transaction WHERE customer_key = "
                                     "CAST(:k AS uuid)", k=customer_pseudonym(SECRET_KEY, self.forgotten))[0][0]
                assert gone == 0
                self.forgotten = None

        @invariant()
        def reports_equal_plain_sql(self):
            for group_by in ("branch", "day", "payment_method", "hour"):
                body = self._report("/v1/reports/sales", group_by=group_by)
                assert {row[ROW_KEYS[group_by]]: figures(row) for row in body["rows"]} == \
                    plain_sales(engine, group_by)
            products = self._report("/v1/reports/sales", group_by="product")
            rows = plain(engine, """
                SELECT i.product_id, count(DISTINCT i.transaction_id), sum(i.quantity),
                       sum(i.quantity * i.unit_price),
                       round(sum(i.quantity * i.unit_price) / count(DISTINCT i.transaction_id), 2)
                FROM warehouse.fact_transaction_item i GROUP BY 1""")
            assert {row["product_id"]: figures(row) for row in products["rows"]} == {r[0]: tuple(r[1:]) for r in rows}
            peak = self._report("/v1/reports/peak-hours")
            rows = plain(engine, f"""
                SELECT extract(isodow FROM {LOCAL})::int, extract(hour FROM {LOCAL})::int, count(*), sum(f.total)
                FROM warehouse.fact_transaction f GROUP BY 1, 2""")
            assert {(c["weekday"], c["hour"]): (c["transactions"], Decimal(c["revenue"])) for c in peak["cells"]} \
                == {(r[0], r[1]): (r[2], r[3]) for r in rows}
            for granularity, branches in (("week", None), ("day", ["Leeds", "Birmingham"])):
                params = {"granularity": granularity, **({"branch": branches} if branches else {})}
                body = self._report("/v1/reports/customers", **params)
                rows = plain(engine, CUSTOMERS_PLAIN, granularity=granularity, branches=branches, product=None)
                assert {p["period_start"]: (p["customers"], p["new_customers"]) for p in body["series"]
                        if p["customers"]} == {r[0].isoformat(): (r[1], r[2]) for r in rows}

        # --- helpers --------------------------------------------------------------------------
        def _report(self, path: str, **params) -> dict:
            response = self.reporting.get(path, query_string={**period, **params}, headers=ADMIN)
            assert response.status_code == 200, response.get_json()
            return response.get_json()

        def _post(self, path: str, body: dict) -> dict:
            response = self.orders.post(path, json=body, headers=ADMIN)
            assert response.status_code == 201, response.get_json()
            return response.get_json()

        def _outbox(self, order_id: int, kind: str) -> int:
            return plain(engine, "SELECT id FROM orders.outbox WHERE order_id = :o AND kind = :k",
                         o=order_id, k=kind)[0][0]

    run_state_machine_as_test(Corrections, settings=hypothesis_settings(
        max_examples=25, stateful_step_count=20, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
