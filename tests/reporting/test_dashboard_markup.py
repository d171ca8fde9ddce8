"""Names from branch files reach the dashboard's charts as text: a product named `<a href=...>Click me</a>` once
became a link (the chart library then used rendered markup in labels). In headless Chromium, against the real
service: no markup rendered anywhere in the charts, the literal name visible in the names and the hover text, and
the only links are the page's own click-through links to a view."""
from __future__ import annotations

import json

import pytest

from tests.reporting.conftest import dashboard_stack, load_files
from tests.reporting.test_dashboard_page import sign_in
from tests.support import register_branches

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
    with dashboard_stack(tmp_path, "dana") as url:
        yield url


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

    charts = ", ".join(f"#{chart}" for chart in CHARTS)
    assert page.locator(f":is({charts}) :is(b, i, br)").count() == 0       # no markup from a name rendered
    links = page.eval_on_selector_all(f":is({charts}) a", "ns => ns.map(n => [n.textContent, n.getAttribute('href')])")
    assert links and all(href.startswith("/dashboard?") for _, href in links), links   # click-through, nothing else
    products = _texts(page, "#chart-top-products tbody th")
    assert {LINK, BOLD, BREAK} <= set(products), products
    assert _texts(page, "#chart-branches tbody th") == [BRANCH]

    # The best seller (the link's product) is the top bar: its hover text names it literally.
    bar = page.locator("#chart-top-products tbody tr:first-child .bar")
    bar.scroll_into_view_if_needed()          # below the headline tiles: the mouse reaches only what is on screen
    bar.hover()
    page.wait_for_selector(".tooltip:not([hidden])", timeout=5_000)
    hover = page.locator(".tooltip").inner_text()
    assert LINK in hover and page.locator(".tooltip *").count() == 0
    assert problems == []
    context.close()
