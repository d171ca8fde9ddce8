"""/dashboard in headless Chromium against the real service (`cafeflow serve reporting`) over the real
files: the login takes a reporting token, the page loads with data, every chart renders, nothing is
fetched from another origin, and the console stays free of errors."""
from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from services.cli import main as cli
from tests.support import Stack

pytestmark = pytest.mark.e2e
CHARTS = ["chart-trend", "chart-branches", "chart-top-products", "chart-bottom-products", "chart-peak",
          "chart-payment", "chart-customers"]


@pytest.fixture(scope="module")
def served(real_warehouse, tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("reporting"))
    yield stack.start_reporting()
    stack.stop()


@pytest.fixture
def reporting_token(served):
    return new_reporting_token()


def new_reporting_token() -> str:
    result = CliRunner().invoke(cli, ["token", "add", "dashboard", "--scope", "reporting"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def sign_in(page, url: str, token: str) -> None:
    """Through the login form, as a person does; waits until every chart has its data."""
    page.goto(f"{url}/dashboard")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)


def test_dashboard_loads_with_data_and_renders_every_chart(browser, served, reporting_token):
    context = browser.new_context()
    page = context.new_page()
    problems, foreign = [], []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda req: foreign.append(req.url) if not req.url.startswith(served) else None)

    page.goto(f"{served}/dashboard")
    assert page.url.endswith("/dashboard/login")
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    assert page.locator(".error").is_visible()
    problems.clear()      # the 401 of a refused login is logged by Chromium as a failed resource load

    page.fill("#token", reporting_token)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
    assert page.url.endswith("/dashboard")
    for chart in CHARTS:
        locator = page.locator(f"#{chart}")
        assert locator.get_attribute("data-rendered") == "true", chart
        assert locator.locator("svg.main-svg").count() >= 1, chart
    assert page.locator("#chart-branches .bars path").count() >= 1          # bars drawn, so data arrived
    assert page.locator("#chart-peak .hm, #chart-peak image").count() >= 1   # the heatmap itself
    assert page.locator("#chart-payment .slice").count() >= 1
    assert page.locator("#missing-files table tbody tr").count() >= 1       # the real files miss days
    assert page.locator("#branch option").count() >= 1
    assert "Could not load" not in page.inner_text("#status")

    cookie = next(c for c in context.cookies() if c["name"] == "cafeflow_reporting")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert reporting_token not in page.content()
    assert problems == [] and foreign == []

    page.click("text=Sign out")
    page.wait_for_url("**/dashboard/login")
    assert httpx.get(f"{served}/v1/reports/trend", cookies={"cafeflow_reporting": "forged"}).status_code == 401
    context.close()
