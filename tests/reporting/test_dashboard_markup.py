"""Names from branch files reach the dashboard's charts as text: Plotly renders a subset of HTML in labels
(links, bold, line breaks), so a product named `<a href=...>Click me</a>` became a link. In headless
Chromium, against the real service: no link, no markup rendered, the literal name visible in the tick
labels and the hover text."""
from __future__ import annotations

import json

import pytest

from tests.reporting.conftest import load_files
from tests.reporting.test_dashboard_page import sign_in
from tests.signin import add_user
from tests.support import Stack, register_branches

pytestmark = pytest.mark.e2e
LINK = '<a href="https://evil.example/">Click me</a>'
BOLD = "<b>Bold</b> brew"
BREAK = "Line<br>break & more"
BRANCH = "Evil <i>Branch</i>"
CHARTS = ["chart-trend", "chart-branches", "chart-top-products", "chart-bottom-products", "chart-peak",
          "chart-payment", "chart-customers"]


def _sale(minute: int, name: str, price: str) -> dict:
    return {"timestamp": f"2025-09-01T09:{minute:02d}:00", "branch": BRANCH, "customer": f"Guest {minute}",
            "items": [{"name": name, "size": None, "price": price, "quantity": 1}], "total": price,
            "payment_method": "CASH"}


@pytest.fixture
def served(clean, settings, celery_app, tmp_path):
    register_branches(clean, [BRANCH])
    sales = [_sale(0, LINK, "3.00"), _sale(1, BOLD, "2.00"), _sale(2, BREAK, "1.00"), _sale(3, "Latte", "2.50")]
    path = tmp_path / "evil_01-09-2025.ndjson"
    path.write_text("\n".join(map(json.dumps, sales)))
    load_files(settings, celery_app, [path])
    add_user("dana", role="admin")
    stack = Stack(tmp_path)
    stack.start_orders()
    yield stack.start_reporting()
    stack.stop()


def _texts(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")


def test_names_with_markup_are_shown_as_text_in_every_chart(browser, served):
    context = browser.new_context()
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    sign_in(page, served)
    for chart in CHARTS:
        assert page.locator(f"#{chart}").get_attribute("data-rendered") == "true", chart

    assert page.locator(".js-plotly-plot a").count() == 0               # no link anywhere in the charts
    assert page.locator(".js-plotly-plot tspan[style*='bold']").count() == 0
    names = "#chart-top-products, #chart-bottom-products, #chart-branches"
    assert page.locator(f":is({names}) tspan.line").count() == 0       # no <br> splitting a name in two
    products = _texts(page, "#chart-top-products .ytick text")
    assert {LINK, BOLD, BREAK} <= set(products), products
    assert _texts(page, "#chart-branches .ytick text") == [BRANCH]

    # The best seller (the link's product) is the top bar; Plotly's drag layer takes the pointer events.
    bar = page.locator("#chart-top-products .bars .point:last-child path")
    bar.scroll_into_view_if_needed()          # below the headline tiles: the mouse reaches only what is on screen
    box = bar.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#chart-top-products .hoverlayer .hovertext", timeout=5_000)
    hover = " ".join(_texts(page, "#chart-top-products .hoverlayer .hovertext text"))
    assert LINK in hover and page.locator(".hoverlayer a").count() == 0
    assert problems == []
    context.close()
