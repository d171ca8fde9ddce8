"""A new deployment's dashboard, before any file is loaded: it says how to load files instead of drawing empty
charts, and still offers every registered branch."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.reporting.conftest import dashboard_stack
from tests.reporting.test_dashboard_page import sign_in
from tests.support import ARTEFACTS

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(clean, tmp_path):
    with dashboard_stack(tmp_path, "nell") as url:
        yield url


def test_an_empty_warehouse_shows_how_to_load_files(browser, served):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    sign_in(page, served, "nell")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#empty")).to_contain_text("cafeflow upload FOLDER --token TOKEN")
    assert page.locator("#content").is_hidden() and page.locator("#error").is_hidden()
    assert page.locator("[data-rendered]").count() == 0         # no chart drawn, empty or not
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTEFACTS / "dashboard-empty-1400.png", full_page=True)
    assert problems == []
    context.close()
