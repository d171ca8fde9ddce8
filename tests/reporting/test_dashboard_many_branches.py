"""A chain of many branches: "Branches by revenue" shows the first ten, best first, and the rest on request (a
button that says how many), in headless Chromium against the real service; every row is the API's."""
from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from playwright.sync_api import expect

from tests.reporting.conftest import ADMIN, dashboard_stack, load_files
from tests.reporting.test_dashboard_page import sign_in
from tests.support import register_branches

pytestmark = pytest.mark.e2e
BRANCHES = [f"Town {n:02d}" for n in range(1, 15)]          # 14: more than ten and the two a fold must save


@pytest.fixture
def served(clean, settings, celery_app, tmp_path):
    register_branches(clean, BRANCHES)
    paths = []
    for n, branch in enumerate(BRANCHES, start=1):
        price = f"{n}.50"                                    # Town 14 sells most
        sale = {"timestamp": "2025-09-01T09:00:00", "branch": branch, "customer": f"Guest {n}",
                "items": [{"name": "Latte", "size": None, "price": price, "quantity": 1}], "total": price,
                "payment_method": "CASH"}
        path = tmp_path / f"town{n:02d}_01-09-2025.ndjson"
        path.write_text(json.dumps(sale))
        paths.append(path)
    load_files(settings, celery_app, paths)
    with dashboard_stack(tmp_path, "dana") as url:
        yield url


def test_many_branches_show_the_first_ten_and_the_rest_on_request(browser, served):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    page = context.new_page()
    sign_in(page, served)
    rows = httpx.get(f"{served}/v1/reports/sales", params={"group_by": "branch", "order": "desc",
                                                          "from": "2025-09-01", "to": "2025-09-01"},
                     headers=ADMIN, timeout=30).json()["rows"]
    expected = [[r["branch"], f"£{Decimal(r['revenue']):,.2f}"] for r in rows]
    assert [name for name, _ in expected[:3]] == ["Town 14", "Town 13", "Town 12"]
    page.goto(f"{served}/dashboard?from=2025-09-01&to=2025-09-01")
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)

    # The rows on screen (a folded row has no box), each as (name, amount).
    read = """() => [...document.querySelectorAll('#chart-branches tbody tr')].filter(r => r.getClientRects().length)
        .map(r => [r.querySelector('th').textContent, r.querySelector('.figure').textContent])"""
    assert page.evaluate(read) == expected[:10]
    more = page.locator("#chart-branches .more-rows")
    expect(more).to_have_text("Show all 14 branches")
    assert more.get_attribute("aria-expanded") == "false"
    more.click()
    assert page.evaluate(read) == expected
    expect(more).to_have_text("Show the first 10 only")
    assert more.get_attribute("aria-expanded") == "true"
    more.click()
    assert len(page.evaluate(read)) == 10
    context.close()
