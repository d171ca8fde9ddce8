"""/dashboard in headless Chromium against the real services (`cafeflow serve reporting`, and orders, whose
/signin is the sign-in of every page) over the real files: the page sends the browser to sign in and back,
loads with data, every chart renders, nothing is fetched from outside the services, and the console stays
free of errors."""
from __future__ import annotations

import httpx
import pytest

from tests.signin import browser_sign_in

pytestmark = pytest.mark.e2e
CHARTS = ["chart-trend", "chart-branches", "chart-top-products", "chart-bottom-products", "chart-peak",
          "chart-payment", "chart-customers"]


def sign_in(page, url: str, username: str = "dana") -> None:
    """Opens the dashboard at `url`, signs in on the page it is sent to, and waits for every chart's data."""
    page.goto(f"{url}/dashboard")
    browser_sign_in(page, username)
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)


def test_dashboard_loads_with_data_and_renders_every_chart(browser, stack, served):
    orders = stack.url_of("orders")
    context = browser.new_context()
    page = context.new_page()
    problems, foreign = [], []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda req: foreign.append(req.url) if not req.url.startswith((served, orders)) else None)

    page.goto(f"{served}/dashboard")
    assert page.url.startswith(f"{orders}/signin?next=")
    browser_sign_in(page, "dana", "not the password")
    assert page.locator("#error").inner_text() == "Wrong username or password."
    problems.clear()      # the 401 of a refused sign-in is logged by Chromium as a failed resource load

    browser_sign_in(page, "dana")
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
    assert "/dashboard?from=" in page.url          # the view it opened on, in the URL
    for chart in CHARTS:
        locator = page.locator(f"#{chart}")
        assert locator.get_attribute("data-rendered") == "true", chart
        assert locator.locator("svg.time-chart, table").count() == 1, chart
    assert page.locator("#chart-branches tbody .bar").count() >= 1          # bars drawn, so data arrived
    assert page.locator("#chart-trend .line").count() == 1
    assert page.locator("#chart-customers .bar").count() >= 1
    assert page.locator("#chart-peak td.cell").count() >= 7                 # the heatmap itself
    assert page.locator("#chart-payment tbody tr").count() >= 1
    assert page.locator("#missing-files table tbody tr").count() >= 1       # the real files miss days
    assert page.locator("#branch option").count() >= 1
    assert "Could not load" not in page.inner_text("#status")

    cookie = next(c for c in context.cookies() if c["name"] == "cafeflow_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # The charts are drawn by the page's own script, so its policy allows no inline script or style at all, and
    # nothing from another origin (the console above stayed free of refusals).
    policy = httpx.get(page.url, cookies={"cafeflow_session": cookie["value"]}).headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "default-src 'none'" in policy and "style-src 'self';" in policy
    assert page.locator("#who").inner_text() == "Signed in as dana (admin)"
    assert problems == [] and foreign == []

    page.click("text=Sign out")
    page.wait_for_url(f"{orders}/signin?signed_out=1")
    for value in ("forged", cookie["value"]):      # a copied cookie ends with the sign-out
        assert httpx.get(f"{served}/v1/reports/trend", cookies={"cafeflow_session": value}).status_code == 401
    context.close()
