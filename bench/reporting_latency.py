"""Reporting latency on a large warehouse, against the plain GROUP BY a BI tool would run, in one run.

  1. makes sure the warehouse holds --transactions generated sales (bench/reporting_warehouse.py: loaded
     through the transform code, resumable; a 10M build takes 15-30 minutes here, once)
  2. starts the service as deployed (`cafeflow serve reporting`, gunicorn) and, per report:
     cold   the Redis cache emptied before every request (PostgreSQL's own buffers stay warm)
     warm   the same request answered from the cache
     plain  the same question as one SQL statement over the fact tables, on the same server
  3. the dashboard's set of JSON requests (10) from --clients concurrent clients, warm, for --seconds
  4. the dashboard page itself in headless Chromium (Debian's /usr/bin/chromium, as the tests run it), opened
     on its default view (the latest complete week with sales, where /dashboard sends a browser): the requests one
     view makes and the time from navigation to every chart drawn (`body[data-loaded=true]`), --page-runs times
     each: cold (report cache emptied and a new browser profile, so the page's script and style are fetched
     too), cold reports in a warm browser, and warm (both cached).

The page needs a signed-in browser, which needs a user row; the benchmark warehouse is used read-only, so no
user is added: the page's HTML (rendered by the service's own template, for an admin) is handed to Chromium
for the /dashboard navigation, and everything else it loads (style, scripts, every JSON call) comes from
the real service, authenticated by the admin bearer token instead of the session cookie. What this leaves
out is the server's ~10 ms render of the HTML with its session check.

Usage: .venv/bin/python bench/reporting_latency.py --transactions 10000000 [--days 28] [--runs 40]
       .venv/bin/python bench/reporting_latency.py --skip-build --page-only [--page-runs 10]
Uses BENCH_DATABASE_URL (default cafeflow_bench_reporting) and BENCH_REDIS_URL (default Redis db 8).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL",
                                    "postgresql://postgres@127.0.0.1:5432/cafeflow_bench_reporting")
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
os.environ["TEST_DATABASE_URL"] = BENCH_DATABASE_URL
os.environ["TEST_REDIS_URL"] = BENCH_REDIS_URL

import httpx  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.support import ADMIN_TOKEN, Stack, free_port, wait_until  # noqa: E402

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LOCAL = "(f.occurred_at AT TIME ZONE 'Europe/London')"
WINDOW = ("f.occurred_at >= CAST(:lo AS timestamp) AT TIME ZONE 'Europe/London' "
          "AND f.occurred_at < (CAST(:hi AS timestamp) + interval '1 day') AT TIME ZONE 'Europe/London'")
ONE_BRANCH = "Longridge"      # one of the generated branches (services.tools.generate.branch_name)
ONE_PRODUCT = "latte|large|"  # a product of the generated menu (services.tools.generate.MENU), as a product key
ITEMS = "(SELECT sum(quantity) FROM warehouse.fact_transaction_item i WHERE i.transaction_id = f.id)"


def plain_sales(key: str, join: str = "") -> str:
    return f"""SELECT {key}, count(*), sum({ITEMS}), sum(f.total) FROM warehouse.fact_transaction f {join}
               WHERE {WINDOW} GROUP BY 1"""


def plain_product(keys: tuple[str, ...], where: str = "") -> str:
    """One product's sales (those containing it, its quantity and line revenue) grouped by `keys`."""
    groups = ", ".join(str(n) for n in range(1, len(keys) + 1))
    return f"""SELECT {', '.join(keys)}, count(DISTINCT f.id), sum(i.quantity), sum(i.quantity * i.unit_price)
               FROM warehouse.fact_transaction f JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
               WHERE {WINDOW} {where}
                 AND i.product_id = (SELECT id FROM warehouse.dim_product WHERE product_key = '{ONE_PRODUCT}')
               GROUP BY {groups}"""


# (name, path, params, the same question as plain SQL over the fact tables)
REPORTS = [
    ("sales by branch", "/v1/reports/sales", {"group_by": "branch"},
     plain_sales("b.name", "JOIN warehouse.dim_branch b ON b.id = f.branch_id")),
    ("sales by product", "/v1/reports/sales", {"group_by": "product"}, f"""
        SELECT i.product_id, count(DISTINCT f.id), sum(i.quantity), sum(i.quantity * i.unit_price)
        FROM warehouse.fact_transaction f JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
        WHERE {WINDOW} GROUP BY 1"""),
    ("top 10 products", "/v1/reports/sales", {"group_by": "product", "order": "desc", "limit": 10}, f"""
        SELECT i.product_id, count(DISTINCT f.id), sum(i.quantity), sum(i.quantity * i.unit_price) AS revenue
        FROM warehouse.fact_transaction f JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
        WHERE {WINDOW} GROUP BY 1 ORDER BY revenue DESC LIMIT 10"""),
    ("sales by day", "/v1/reports/sales", {"group_by": "day"}, plain_sales(f"{LOCAL}::date")),
    ("sales by week", "/v1/reports/sales", {"group_by": "week"}, plain_sales(f"date_trunc('week', {LOCAL})")),
    ("sales by month", "/v1/reports/sales", {"group_by": "month"}, plain_sales(f"date_trunc('month', {LOCAL})")),
    ("sales by hour", "/v1/reports/sales", {"group_by": "hour"}, plain_sales(f"extract(hour FROM {LOCAL})")),
    ("sales by weekday", "/v1/reports/sales", {"group_by": "weekday"}, plain_sales(f"extract(isodow FROM {LOCAL})")),
    ("sales by payment", "/v1/reports/sales", {"group_by": "payment_method"}, plain_sales("f.payment_method")),
    ("peak hours", "/v1/reports/peak-hours", {}, f"""
        SELECT extract(isodow FROM {LOCAL}), extract(hour FROM {LOCAL}), count(*), sum(f.total)
        FROM warehouse.fact_transaction f WHERE {WINDOW} GROUP BY 1, 2"""),
    ("trend by day", "/v1/reports/trend", {"granularity": "day"}, plain_sales(f"{LOCAL}::date")),
    ("trend by month", "/v1/reports/trend", {"granularity": "month"}, plain_sales(f"date_trunc('month', {LOCAL})")),
    ("customers by week", "/v1/reports/customers", {"granularity": "week"}, f"""
        WITH first AS (SELECT customer_key, (min(occurred_at) AT TIME ZONE 'Europe/London')::date AS first_day
                       FROM warehouse.fact_transaction WHERE customer_key IS NOT NULL GROUP BY 1),
        active AS (SELECT DISTINCT date_trunc('week', {LOCAL})::date AS period, f.customer_key
                   FROM warehouse.fact_transaction f WHERE f.customer_key IS NOT NULL AND {WINDOW})
        SELECT a.period, count(*), count(*) FILTER (WHERE first.first_day >= a.period)
        FROM active a JOIN first USING (customer_key) GROUP BY 1"""),
    ("top 10, one branch", "/v1/reports/sales", {"group_by": "product", "order": "desc", "limit": 10,
                                                  "branch": ONE_BRANCH}, f"""
        SELECT i.product_id, count(DISTINCT f.id), sum(i.quantity), sum(i.quantity * i.unit_price) AS revenue
        FROM warehouse.fact_transaction f JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
        JOIN warehouse.dim_branch b ON b.id = f.branch_id
        WHERE {WINDOW} AND b.name = '{ONE_BRANCH}' GROUP BY 1 ORDER BY revenue DESC LIMIT 10"""),
    ("customers, one branch", "/v1/reports/customers", {"granularity": "week", "branch": ONE_BRANCH}, f"""
        WITH first AS (SELECT customer_key, (min(occurred_at) AT TIME ZONE 'Europe/London')::date AS first_day
                       FROM warehouse.fact_transaction WHERE customer_key IS NOT NULL GROUP BY 1),
        active AS (SELECT DISTINCT date_trunc('week', {LOCAL})::date AS period, f.customer_key
                   FROM warehouse.fact_transaction f JOIN warehouse.dim_branch b ON b.id = f.branch_id
                   WHERE f.customer_key IS NOT NULL AND {WINDOW} AND b.name = '{ONE_BRANCH}')
        SELECT a.period, count(*), count(*) FILTER (WHERE first.first_day >= a.period)
        FROM active a JOIN first USING (customer_key) GROUP BY 1"""),
    # One product (a size of it: a name covering several sizes is several products summed, read from the facts).
    ("product by hour", "/v1/reports/sales", {"group_by": "hour", "product": ONE_PRODUCT},
     plain_product((f"extract(hour FROM {LOCAL})",))),
    ("product by weekday", "/v1/reports/sales", {"group_by": "weekday", "product": ONE_PRODUCT},
     plain_product((f"extract(isodow FROM {LOCAL})",))),
    ("product peak hours", "/v1/reports/peak-hours", {"product": ONE_PRODUCT},
     plain_product((f"extract(isodow FROM {LOCAL})", f"extract(hour FROM {LOCAL})"))),
    ("product hours, 1 br.", "/v1/reports/sales", {"group_by": "hour", "product": ONE_PRODUCT, "branch": ONE_BRANCH},
     plain_product((f"extract(hour FROM {LOCAL})",),
                   f"AND f.branch_id = (SELECT id FROM warehouse.dim_branch WHERE name = '{ONE_BRANCH}')")),
    ("coverage", "/v1/reports/coverage", {}, f"""
        SELECT b.name, {LOCAL}::date, count(*) FROM warehouse.fact_transaction f
        JOIN warehouse.dim_branch b ON b.id = f.branch_id WHERE f.source = 'file' AND {WINDOW} GROUP BY 1, 2"""),
]
# What the dashboard page asks for one view (services/reporting/static/dashboard.js), coverage over its last 14 days.
DASHBOARD = [("/v1/reports/options", {}), ("/v1/reports/summary", {}),
             ("/v1/reports/trend", {"granularity": "day"}),
             ("/v1/reports/sales", {"group_by": "branch", "order": "desc"}),
             ("/v1/reports/sales", {"group_by": "product", "order": "desc", "limit": 10}),
             ("/v1/reports/sales", {"group_by": "product", "order": "asc", "limit": 10}),
             ("/v1/reports/peak-hours", {}), ("/v1/reports/sales", {"group_by": "payment_method"}),
             ("/v1/reports/customers", {"granularity": "week"}), ("/v1/reports/coverage", {})]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=10_000_000, help="warehouse size to build/ensure")
    parser.add_argument("--days", type=int, default=28, help="report window: the last N days with sales")
    parser.add_argument("--runs", type=int, default=40, help="requests per report, cold and warm each")
    parser.add_argument("--plain-runs", type=int, default=3, help="runs of each plain GROUP BY (median)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the service")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--page-runs", type=int, default=10, help="page loads per cache state (Chromium)")
    parser.add_argument("--page-only", action="store_true", help="only the page in Chromium (step 4)")
    parser.add_argument("--only", action="append", metavar="TEXT",
                        help="only the reports whose name contains TEXT (repeatable); skips steps 3 and 4")
    return parser.parse_args()


def dashboard_html() -> str:
    """/dashboard's HTML as the service renders it for a signed-in admin (see the module's docstring)."""
    from flask import render_template

    from services.common.auth import StandingUser
    from services.reporting.app import create_app

    app = create_app()
    user = StandingUser(user_id=0, username="bench", role="admin", branch=None, branch_key=None)
    with app.test_request_context("/dashboard"):
        return render_template("dashboard.html", user=user)


def page_loads(url: str, cache: redis.Redis, runs: int) -> list[tuple[str, float, float, int, int]]:
    """(state, p50 s, max s, requests per view, bytes) per cache state, over `runs` loads each."""
    from playwright.sync_api import sync_playwright

    html = dashboard_html()
    # /dashboard without dates answers 303 to itself with the opening week's dates (services/reporting/api/
    # dashboard.py); the page is opened at that URL, as the browser would be sent to it.
    options = httpx.get(f"{url}/v1/reports/options", headers=HEADERS, timeout=60).json()
    opening = f"{url}/dashboard?from={options['default_from']}&to={options['default_to']}"
    print(f"the default view: {opening}", flush=True)
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])

        def context():
            return browser.new_context(viewport={"width": 1400, "height": 900}, extra_http_headers=HEADERS)

        def hand_over_html(page):
            # Through the DevTools protocol and for the document only: Playwright's own page.route would turn
            # off the browser's HTTP cache, and with it the difference between a cold and a warm browser.
            cdp = page.context.new_cdp_session(page)
            cdp.send("Fetch.enable", {"patterns": [{"urlPattern": f"{url}/dashboard*", "resourceType": "Document"}]})
            cdp.on("Fetch.requestPaused", lambda event: cdp.send("Fetch.fulfillRequest", {
                "requestId": event["requestId"], "responseCode": 200, "body": base64.b64encode(html.encode()).decode(),
                "responseHeaders": [{"name": "Content-Type", "value": "text/html; charset=utf-8"}]}))
            cdp.send("Performance.enable")
            return cdp

        def one_load(page) -> tuple[float, float, float, int, int]:
            cdp = hand_over_html(page)
            before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            seen: list[int] = []
            sizes: list[int] = []
            page.on("request", lambda request: seen.append(1))
            page.on("response", lambda response: sizes.append(int(response.headers.get("content-length") or 0)))
            started = time.perf_counter()
            page.goto(opening)
            page.wait_for_selector("body[data-loaded=true]", timeout=120_000)
            elapsed = time.perf_counter() - started
            if os.environ.get("BENCH_PAGE_TIMINGS"):
                print(page.evaluate("""() => performance.getEntriesByType('resource').map(
                    e => `${e.name.split('/').slice(3).join('/').slice(0, 60)} ${Math.round(e.startTime)}+`
                         + `${Math.round(e.duration)} ${e.transferSize}`).join('\\n')"""))
            if page.locator(".chart-error, #error:not([hidden])").count():
                raise SystemExit(f"the page drew an error: {page.inner_text('body')[:500]}")
            # When the last JSON answer had arrived, from the navigation's start: the rest is the browser's
            # running of the page's script and drawing.
            data_ready = page.evaluate("""() => Math.max(...performance.getEntriesByType('resource')
                .filter(e => e.name.includes('/v1/')).map(e => e.responseEnd))""") / 1000
            # CPU time of the page's main thread (script, style, layout; ThreadTime, not the wall time of its tasks):
            # the work itself, which the machine's load only stretches.
            after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            return elapsed, data_ready, after["ThreadTime"] - before.get("ThreadTime", 0), len(seen), sum(sizes)

        for state in ("cold", "cold reports, warm browser", "warm"):
            times, ready, busy, requests, transferred = [], [], [], 0, 0
            shared = context()
            one_load(shared.new_page())                       # the warm browser's HTTP cache holds the assets
            for _ in range(runs):
                if state == "cold":
                    fresh = context()
                    cache.flushdb()
                    elapsed, data_ready, main_thread, requests, transferred = one_load(fresh.new_page())
                    fresh.close()
                else:
                    if state.startswith("cold reports"):
                        cache.flushdb()
                    elapsed, data_ready, main_thread, requests, transferred = one_load(shared.new_page())
                if os.environ.get("BENCH_PAGE_TIMINGS"):
                    print(f"{state}: drawn {elapsed * 1000:.0f} ms, JSON in {data_ready * 1000:.0f} ms", flush=True)
                times.append(elapsed)
                ready.append(data_ready)
                busy.append(main_thread)
            shared.close()
            results.append((state, statistics.median(times), max(times), statistics.median(ready),
                            statistics.median(busy), requests, transferred))
        browser.close()
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def timed_get(client: httpx.Client, path: str, params: dict, expect: str | None) -> float:
    started = time.perf_counter()
    response = client.get(path, params=params, headers=HEADERS)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{path} {params}: {response.status_code} {response.text[:300]}")
    if expect and response.headers.get("X-Cache") not in (None, expect):
        raise SystemExit(f"{path}: expected a cache {expect}, got {response.headers.get('X-Cache')}")
    return elapsed


async def dashboard_load(url: str, clients: int, seconds: float, window: dict) -> tuple[int, int, list[float]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    pages = 0

    async def one_client() -> None:
        nonlocal pages
        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=60) as client:
            while time.perf_counter() < deadline:
                for path, params in DASHBOARD:
                    started = time.perf_counter()
                    response = await client.get(path, params={**window, **params})
                    latencies.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise SystemExit(f"dashboard request failed: {response.status_code}")
                pages += 1
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return pages, len(latencies), latencies


def main() -> None:
    args = arguments()
    if not args.skip_build:
        subprocess.run([sys.executable, str(ROOT / "bench" / "reporting_warehouse.py"), "--transactions",
                        str(args.transactions)], check=True)
    engine = create_engine(BENCH_DATABASE_URL.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction")).scalar()
        items = conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction_item")).scalar()
        last = conn.execute(text("SELECT max(local_date) FROM warehouse.rollup_sales_day")).scalar()
    first = last - dt.timedelta(days=args.days - 1)
    window = {"from": first.isoformat(), "to": last.isoformat()}
    print(f"warehouse: {total:,} transactions, {items:,} items; window {window['from']} .. {window['to']} "
          f"({args.days} days)", flush=True)

    cache = redis.Redis.from_url(BENCH_REDIS_URL)
    stack = Stack(Path(tempfile.mkdtemp(prefix="cafeflow-bench-reporting-")))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = stack.start("reporting", ["serve", "reporting", "--port", str(port), "--host", "127.0.0.1",
                                        "--workers", str(args.workers)], env={"LOG_LEVEL": "WARNING"})

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    wait_until(ready, 60, f"reporting did not start:\n{process.output()}")
    results = []
    if args.page_only:
        try:
            page = page_loads(url, cache, args.page_runs)
        finally:
            stack.stop()
        print_page(page, args.page_runs)
        return
    try:
        chosen = [r for r in REPORTS if not args.only or any(text_ in r[0] for text_ in args.only)]
        with httpx.Client(base_url=url, timeout=120) as client:
            for name, path, params, plain_sql in chosen:
                query = {**window, **params}
                opening = client.get(path, params=query, headers=HEADERS)  # connections and plans warm
                source = opening.json().get("answered_from") if opening.status_code == 200 else opening.text[:200]
                cold = []
                for _ in range(args.runs):
                    cache.flushdb()
                    cold.append(timed_get(client, path, query, "miss"))
                warm = [timed_get(client, path, query, "hit") for _ in range(args.runs)]
                plain = []
                with engine.connect() as conn:
                    for _ in range(args.plain_runs):
                        started = time.perf_counter()
                        conn.execute(text(plain_sql), {"lo": first, "hi": last}).all()
                        plain.append(time.perf_counter() - started)
                row = (name, percentile(cold, .5), percentile(cold, .99), percentile(warm, .5), percentile(warm, .99),
                       statistics.median(plain))
                results.append(row)
                print(f"  {name:<20} cold p50 {row[1] * 1000:7.2f} p99 {row[2] * 1000:7.2f} ms | warm p50 "
                      f"{row[3] * 1000:6.2f} p99 {row[4] * 1000:6.2f} ms | plain {row[5] * 1000:9.1f} ms | {source}",
                      flush=True)
            for path, params in DASHBOARD if not args.only else ():      # warm the dashboard's answers
                timed_get(client, path, {**window, **params}, None)
        if not args.only:
            pages, requests, latencies = asyncio.run(dashboard_load(url, args.clients, args.seconds, window))
            page = page_loads(url, cache, args.page_runs)
    finally:
        stack.stop()

    print()
    print(f"{'report':<20}{'cold p50':>10}{'cold p99':>10}{'warm p50':>10}{'warm p99':>10}{'plain SQL':>12}"
          f"{'plain/cold p99':>16}")
    for name, c50, c99, w50, w99, plain in results:
        print(f"{name:<20}{c50 * 1000:>9.1f}ms{c99 * 1000:>8.1f}ms{w50 * 1000:>8.1f}ms{w99 * 1000:>8.1f}ms"
              f"{plain * 1000:>10.0f}ms{plain / c99:>15.0f}x")
    worst = max(r[2] for r in results)
    print(f"\nworst cold p99: {worst * 1000:.1f} ms (target < 50 ms); smallest plain/cold-p99 ratio: "
          f"{min(r[5] / r[2] for r in results):.0f}x (target >= 50x)")
    if args.only:
        return
    print(f"dashboard, {args.clients} clients, warm, {args.seconds:.0f} s: {pages / args.seconds:.1f} dashboards/s, "
          f"{requests / args.seconds:.0f} requests/s, request p50 {percentile(latencies, .5) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, .99) * 1000:.1f} ms ({args.workers} gunicorn workers)")
    print_page(page, args.page_runs)


def print_page(page: list, runs: int) -> None:
    print(f"\nthe dashboard page in Chromium, its default view, {runs} loads per state (target: under 1 s cold):")
    for state, p50, worst, data_p50, busy_p50, requests, transferred in page:
        print(f"  {state:<28} fully drawn p50 {p50 * 1000:6.0f} ms, max {worst * 1000:6.0f} ms | every JSON answer in "
              f"p50 {data_p50 * 1000:5.0f} ms | page main thread CPU p50 {busy_p50 * 1000:5.0f} ms | "
              f"{requests} requests, {transferred / 1e6:.2f} MB by Content-Length (cached ones included)")


if __name__ == "__main__":
    main()
