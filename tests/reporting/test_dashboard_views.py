"""The dashboard as an operations manager uses it, in headless Chromium against the real services over the 65
real files: it opens on the sample data's complete week, every preset, filter, click-through and export works,
the URL is the view (a shared URL shows the same figures), an error replaces the charts, auto-refresh reloads
and says when, and every figure on the page is the JSON API's for the same filters (the test reads both).
Screenshots at 1400x900 and 420x900 go to test-artefacts/."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import expect

from tests.reporting.conftest import ADMIN
from tests.reporting.test_dashboard_page import CHARTS, sign_in
from tests.signin import browser_sign_in
from tests.support import ARTEFACTS

pytestmark = pytest.mark.e2e
SAMPLE_WEEK = {"from": "2021-08-25", "to": "2021-08-31"}      # the 65 files' seven consecutive days
FIRST_DAY, LAST_DAY = "2021-02-23", "2023-05-09"              # two stray sales days in the real files


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB",
                                  accept_downloads=True)
    opened = context.new_page()
    problems = []
    opened.on("pageerror", lambda exc: problems.append(str(exc)))
    yield opened
    context.close()
    assert problems == []


def api(served: str, path: str, **params) -> dict:
    response = httpx.get(f"{served}{path}", params=params, headers=ADMIN, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def pounds(amount: str) -> str:
    return f"£{Decimal(amount):,.2f}"


def view_of(page) -> dict:
    return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(urlsplit(page.url).query).items()}


def wait_loaded(page) -> None:
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)


def go_and_wait(page, action) -> None:
    """Runs `action` (a click, a choice) and waits for the view it starts to be drawn."""
    page.evaluate("document.body.dataset.loaded = 'changing'")
    action()
    page.wait_for_selector("body[data-loaded=true], body[data-loaded=error]", timeout=30_000)


def bars(page, chart: str) -> list[tuple[str, str]]:
    """(name, amount) of each bar of a bar chart, top to bottom, as the page shows them."""
    return [tuple(row) for row in page.eval_on_selector_all(
        f"#{chart} tbody tr", "rows => rows.map(r => [r.querySelector('th').textContent, "
                              "r.querySelector('.figure').textContent])")]


def hover_texts(page, chart: str) -> list[str]:
    """The hover text of each period of a chart over time, oldest first."""
    return page.eval_on_selector_all(f"#{chart} .hit", "nodes => nodes.map(n => n.dataset.tip)")


def product_name(row: dict) -> str:
    return " ".join(p for p in (row["size"], row["product"], row["flavour"]) if p)


def assert_page_equals_api(page, served: str, filters: dict) -> None:
    """Every figure drawn for `filters`, against what the JSON API answers for the same filters."""
    query = {k: v for k, v in filters.items() if k in ("from", "to", "branch", "product", "source")}
    summary = api(served, "/v1/reports/summary", **query)
    for measure, shown in (("revenue", pounds), ("transactions", lambda n: f"{n:,}"),
                           ("average_spend", pounds), ("items_per_sale", str)):
        expect(page.locator(f"#tile-{measure} .value")).to_have_text(shown(summary["current"][measure]))
    branches = api(served, "/v1/reports/sales", group_by="branch", order="desc", **query)["rows"]
    assert bars(page, "chart-branches") == [(r["branch"], pounds(r["revenue"])) for r in branches]
    top = api(served, "/v1/reports/sales", group_by="product", order="desc", limit=10, **query)["rows"]
    assert bars(page, "chart-top-products") == [(product_name(r), pounds(r["revenue"])) for r in top]
    bottom = api(served, "/v1/reports/sales", group_by="product", order="asc", limit=10, **query)["rows"]
    assert bars(page, "chart-bottom-products") == [(product_name(r), pounds(r["revenue"])) for r in reversed(bottom)]
    days = (dt.date.fromisoformat(query["to"]) - dt.date.fromisoformat(query["from"])).days + 1
    granularity = "day" if days <= 62 else "week" if days <= 731 else "month"
    trend = api(served, "/v1/reports/trend", granularity=granularity, **query)["series"]
    assert [tip.split("\n")[1] for tip in hover_texts(page, "chart-trend")] == \
        [f"{pounds(p['revenue'])} from {p['transactions']:,} sales" for p in trend]
    customers = api(served, "/v1/reports/customers", granularity=granularity, **query)["series"]
    assert [tip.split("\n")[1:] for tip in hover_texts(page, "chart-customers")] == [
        [f"{p['new_customers']:,} new, {p['returning_customers']:,} returning customers",
         "no customers" if p["revenue_per_customer"] is None else f"{pounds(p['revenue_per_customer'])} per customer"]
        for p in customers]
    peak = api(served, "/v1/reports/peak-hours", **query)["cells"]
    counts = page.eval_on_selector_all("#chart-peak td.cell .count", "ns => ns.map(n => n.textContent)")
    assert sum(int(c.replace(",", "")) for c in counts) == sum(c["transactions"] for c in peak) \
        == summary["current"]["transactions"]
    payment = api(served, "/v1/reports/sales", group_by="payment_method", **query)["rows"]
    assert bars(page, "chart-payment") == [(r["payment_method"], pounds(r["revenue"])) for r in payment]


def test_opens_on_the_latest_complete_week_with_every_figure_equal_to_the_api(page, served):
    sign_in(page, served, "dana")
    assert {k: view_of(page)[k] for k in ("from", "to")} == SAMPLE_WEEK      # the URL names what is shown
    expect(page.locator("#status")).to_contain_text("Wed 25 Aug 2021 to Tue 31 Aug 2021")
    for chart in CHARTS:
        assert page.locator(f"#{chart}").get_attribute("data-rendered") == "true", chart
    assert_page_equals_api(page, served, SAMPLE_WEEK)
    # Money reads as money, axes have titles, revenue starts at zero, the heatmap says what it counts.
    assert page.locator("#tile-revenue .value").inner_text() == "£115,623.50"
    assert page.locator("#chart-branches thead .amount").text_content() == "Revenue (£)"
    ticks = page.eval_on_selector_all("#chart-trend .axis.left .tick", "ns => ns.map(n => n.textContent)")
    assert ticks[0] == "£0.00" and all(t.startswith("£") for t in ticks), ticks
    assert page.locator("#chart-trend .axis.left .title").text_content() == "Revenue (£)"
    assert page.locator("#chart-trend .periods .title").text_content() == "Day"
    assert page.locator("#chart-peak .scale-title").text_content() == "Sales"
    assert page.locator("#chart-peak .columns-title").text_content() == "Hour of day (UK)"
    weekdays = page.eval_on_selector_all("#chart-peak th.row", "ns => ns.map(n => [n.getBoundingClientRect().top, "
                                         "n.textContent])")
    assert [name for _, name in sorted(weekdays)] == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                                      "Saturday", "Sunday"]      # top to bottom
    # Every registered branch is offered, whatever the range shows.
    offered = page.eval_on_selector_all("#branch option", "ns => ns.map(n => n.value)")
    assert offered[1:] == api(served, "/v1/reports/options")["branches"] and len(offered) == 11
    # No sales in the 7 days before: said so, not a fake change.
    expect(page.locator("#tile-revenue .change")).to_have_text("no sales in the 7 days before")

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shared = page.url
    for width in (1400, 420):                # a desktop, and a phone opening the same view
        if width != 1400:
            page = page.context.new_page()
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(shared)
            wait_loaded(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= width      # nothing wider than the screen
        for chart in CHARTS:
            assert_labels_inside(page, chart)
        page.screenshot(path=ARTEFACTS / f"dashboard-{width}.png", full_page=True)


def assert_labels_inside(page, chart: str) -> None:
    """No label is cut off: every text of the chart (ticks, titles, names, amounts, cells) lies within its place
    on the page, and nothing in it has to be scrolled sideways to be read."""
    outside = page.evaluate(f"""() => {{
        const chart = document.getElementById('{chart}');
        const box = chart.getBoundingClientRect();
        const texts = [...chart.querySelectorAll('text, th, td, .figure, .legend li')]
            .map(n => [n.textContent, n.getBoundingClientRect()])
            .filter(([, r]) => r.width > 0)         // a count hidden on a phone (the colour shows it) is not cut off
            .filter(([, r]) => r.left < box.left - 1 || r.right > box.right + 1
                               || r.top < box.top - 1 || r.bottom > box.bottom + 1)
            .map(([t]) => t);
        const scrolling = [chart, ...chart.querySelectorAll('*')].filter(n => n.scrollWidth > n.clientWidth + 1
            && ['auto', 'scroll'].includes(getComputedStyle(n).overflowX)).map(n => n.className);
        return [...texts, ...scrolling];
    }}""")
    assert outside == [], (chart, outside)


@pytest.mark.parametrize("preset,expected", [
    ("today", lambda t: (t, t)), ("yesterday", lambda t: (t - 1, t - 1)), ("last7", lambda t: (t - 7, t - 1)),
    ("last4weeks", lambda t: (t - 28, t - 1)), ("mtd", None), ("lastmonth", None), ("ytd", None), ("all", None)])
def test_every_preset_sets_its_range(page, served, preset, expected):
    sign_in(page, served, "dana")
    today = dt.date.fromisoformat(api(served, "/v1/reports/options")["today"])
    go_and_wait(page, lambda: page.click(f"[data-preset={preset}]"))
    view = view_of(page)
    assert view["preset"] == preset
    start, end = dt.date.fromisoformat(view["from"]), dt.date.fromisoformat(view["to"])
    if expected is not None:
        lo, hi = expected(today.toordinal())
        assert (start.toordinal(), end.toordinal()) == (lo, hi)
    elif preset == "mtd":
        assert (start, end) == (today.replace(day=1), today)
    elif preset == "lastmonth":
        assert end == today.replace(day=1) - dt.timedelta(days=1) and start == end.replace(day=1)
    elif preset == "ytd":
        assert (start, end) == (today.replace(month=1, day=1), today)
    else:
        assert (view["from"], view["to"]) == (FIRST_DAY, LAST_DAY)    # 806 days: by month, no cap in the way
    expect(page.locator("[aria-pressed=true]")).to_have_attribute("data-preset", preset)
    assert page.locator("#error").is_hidden()
    if preset == "all":
        assert page.locator("#trend-title").inner_text() == "Revenue per month"
        assert_page_equals_api(page, served, view)
    else:        # the sample files are from 2021: a recent range says where the sales are
        expect(page.locator("#no-sales")).to_contain_text("The latest sales are on Tue 9 May 2023")
        go_and_wait(page, lambda: page.click("#no-sales a"))
        assert {k: view_of(page)[k] for k in ("from", "to")} == SAMPLE_WEEK


def test_filters_click_through_and_a_shared_url(page, browser, served):
    sign_in(page, served, "dana")
    # Product filter, then channel: the URL carries them and the figures follow.
    go_and_wait(page, lambda: page.select_option("#product", "Latte"))
    assert view_of(page)["product"] == "Latte"
    assert_page_equals_api(page, served, view_of(page))
    go_and_wait(page, lambda: page.select_option("#source", "file"))
    assert view_of(page)["source"] == "file"
    assert_page_equals_api(page, served, view_of(page))
    go_and_wait(page, lambda: page.select_option("#source", "live"))
    expect(page.locator("#tile-transactions .value")).to_have_text("0")     # no live orders among the files
    go_and_wait(page, lambda: page.select_option("#source", ""))

    # Click-through: the top branch's bar filters to it; a product's bar to that product.
    best = api(served, "/v1/reports/sales", group_by="branch", order="desc", product="Latte", **SAMPLE_WEEK)["rows"][0]
    go_and_wait(page, lambda: click_bar(page, "chart-branches", top=True))
    assert view_of(page)["branch"] == best["branch"]
    assert_page_equals_api(page, served, view_of(page))
    go_and_wait(page, lambda: page.select_option("#product", ""))
    assert "product" not in view_of(page) and view_of(page)["branch"] == best["branch"]
    top = api(served, "/v1/reports/sales", group_by="product", order="desc", limit=1, branch=best["branch"],
              **SAMPLE_WEEK)["rows"][0]
    go_and_wait(page, lambda: click_bar(page, "chart-top-products", top=True))
    assert view_of(page)["product"] == top["product"]
    # A point of the trend narrows the range to that day.
    go_and_wait(page, lambda: click_point(page, "chart-trend", 0))
    assert (view_of(page)["from"], view_of(page)["to"]) == ("2021-08-25", "2021-08-25")
    go_and_wait(page, lambda: page.go_back())                 # the browser's Back is the previous view
    assert (view_of(page)["from"], view_of(page)["to"]) == (SAMPLE_WEEK["from"], SAMPLE_WEEK["to"])
    wait_loaded(page)
    # The same from the keyboard: a period is a tab stop that reads its figures and is picked with Enter.
    second = page.locator("#chart-trend .hit").nth(1)
    assert second.get_attribute("aria-label").startswith("Thu 26 Aug 2021, £")
    second.focus()
    expect(page.locator(".tooltip")).to_contain_text("Thu 26 Aug 2021")
    go_and_wait(page, lambda: page.keyboard.press("Enter"))
    assert (view_of(page)["from"], view_of(page)["to"]) == ("2021-08-26", "2021-08-26")
    go_and_wait(page, lambda: page.go_back())
    wait_loaded(page)

    # The URL, opened by someone else (signing in on the way), shows the same view and figures.
    shared = page.url
    revenue = page.locator("#tile-revenue .value").inner_text()
    other = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB").new_page()
    other.goto(shared)
    browser_sign_in(other, "dana")
    wait_loaded(other)
    assert other.url == shared
    assert other.locator("#tile-revenue .value").inner_text() == revenue
    assert other.locator("#branch").input_value() == best["branch"]
    assert other.locator("#product").input_value() == top["product"]
    assert_page_equals_api(other, served, view_of(other))
    other.context.close()


def click_bar(page, chart: str, top: bool) -> None:
    bars = page.locator(f"#{chart} tbody .bar")
    (bars.first if top else bars.last).click()


def click_point(page, chart: str, index: int) -> None:
    page.locator(f"#{chart} .hit").nth(index).click()


def test_export_downloads_the_view_on_screen(page, served):
    sign_in(page, served, "dana")
    go_and_wait(page, lambda: page.select_option("#branch", "Leeds"))
    summary = api(served, "/v1/reports/summary", branch="Leeds", **SAMPLE_WEEK)["current"]
    with page.expect_download() as download:
        page.click("#export-transactions-csv")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert len(rows) == summary["transactions"] and {r["branch"] for r in rows} == {"Leeds"}
    assert sum(Decimal(r["total"]) for r in rows) == Decimal(summary["revenue"])
    assert download.value.suggested_filename == "transactions_2021-08-25_2021-08-31.csv"
    with page.expect_download() as download:
        page.click("#export-items-parquet")
    table = pq.read_table(download.value.path())
    assert table.num_rows > 0 and set(table.column("branch").to_pylist()) == {"Leeds"}
    assert sum(table.column("quantity").to_pylist()) == summary["items"]
    assert page.locator("#export-items-csv").get_attribute("href").endswith(
        "from=2021-08-25&to=2021-08-31&branch=Leeds")


def test_an_error_replaces_the_charts(page, served):
    sign_in(page, served, "dana")
    assert page.locator("#content").is_visible()
    page.goto(f"{served}/dashboard?from=2021-08-25&to=2021-08-31&branch=Atlantis")
    page.wait_for_selector("body[data-loaded=error]", timeout=30_000)
    expect(page.locator("#error")).to_have_text("Could not load the reports: no such branch: atlantis")
    assert page.locator("#content").is_hidden()               # no chart of an earlier view under the message
    assert page.locator("#too-long").is_hidden()


def test_a_range_too_long_for_its_filters_says_so_and_offers_the_latest_days_that_fit(page, served):
    """Answers read from the sales themselves (one product by payment method, several products summed) and exports
    take at most REPORTING_MAX_RANGE_DAYS (1,100 here): past it the page says so, in place of what it cannot show,
    with a link to the view's latest days that fit, never an error view; the downloads cover those days."""
    sign_in(page, served, "dana")
    limit = api(served, "/v1/reports/options")["max_range_days"]
    assert limit == 1100
    start, end = dt.date(2020, 6, 1), dt.date(2023, 6, 30)           # 1,125 days, the sample week among them
    # The latest 1,100 days start on 26 Jun 2020; the charts per month widen a range to whole months, so the
    # latest days that fit start with the first whole month among them.
    fits_from = "2020-07-01"
    long_view = f"{served}/dashboard?from={start}&to={end}"
    # One size of one product: every chart from the rollups is drawn (its busiest hours too, from
    # rollup_product_hour); the payment mix says why it is not.
    page.goto(f"{long_view}&product=latte%7Clarge%7C")
    wait_loaded(page)
    assert page.locator("#error").is_hidden() and page.locator("#chart-payment table").count() == 0
    assert page.locator("#chart-peak td.cell").count() > 0
    expect(page.locator("#chart-payment .range-limit")).to_have_text(
        f"With these filters this chart is counted from each sale, up to {limit:,} days at a time; this view spans "
        f"{(end - start).days + 1:,} days. Show Wed 1 Jul 2020 to Fri 30 Jun 2023")
    assert page.locator("#chart-trend").get_attribute("data-rendered") == "true"
    assert page.locator("#chart-payment .chart-error").count() == 0
    # The downloads: the view's latest days that fit, said beside them; the file is there.
    expect(page.locator("#export-range")).to_have_text(
        f"(Wed 1 Jul 2020 to Fri 30 Jun 2023, the latest days of this view: downloads cover up to {limit:,} days "
        "at a time)")
    href = page.locator("#export-transactions-csv").get_attribute("href")
    assert f"from={fits_from}&to={end}" in href
    download = httpx.get(f"{served}{href}", headers=ADMIN, timeout=60)
    assert download.status_code == 200, download.text
    fitting = api(served, "/v1/reports/summary", product="latte|large|", **{"from": fits_from, "to": end.isoformat()})
    assert len(list(csv.DictReader(io.StringIO(download.text)))) == fitting["current"]["transactions"] > 0
    go_and_wait(page, lambda: page.click("#chart-payment .range-limit a"))
    assert (view_of(page)["from"], view_of(page)["to"]) == (fits_from, end.isoformat())
    assert page.locator("#chart-payment table").count() > 0 and page.locator("#export-range").is_hidden()

    # A product in all its sizes (several products summed) over the same range: no figure can be shown, and the
    # page says why in place of all of them, with the same way out.
    page.goto(f"{long_view}&product=Latte")
    wait_loaded(page)
    assert page.locator("#error").is_hidden() and page.locator("#content").is_hidden()
    expect(page.locator("#too-long")).to_contain_text("With these filters the figures are counted from each sale")
    go_and_wait(page, lambda: page.click("#too-long a"))
    assert view_of(page)["from"] == fits_from and view_of(page)["product"] == "Latte"
    assert page.locator("#too-long").is_hidden() and page.locator("#content").is_visible()
    assert_page_equals_api(page, served, view_of(page))


def test_auto_refresh_is_off_until_asked_and_says_when_it_updated(page, served):
    page.clock.install()
    sign_in(page, served, "dana")
    assert not page.locator("#refresh").is_checked()
    first = page.locator("#updated").inner_text()
    assert first.startswith("Updated ")
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/reports/summary" in r.url else None)
    page.clock.run_for(120_000)
    assert requests == []                                     # off by default
    page.check("#refresh")
    assert view_of(page)["refresh"] == "1"                    # a wall screen's URL keeps it on
    page.evaluate("document.body.dataset.loaded = 'changing'")
    page.clock.run_for(61_000)
    wait_loaded(page)
    assert len(requests) == 1
    assert page.locator("#updated").inner_text() != first
