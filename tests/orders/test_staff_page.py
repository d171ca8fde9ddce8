"""The staff page (/app) as the shop uses it, in headless Chromium against orders under gunicorn: an admin
starts from nothing (no products: the page says so instead of an empty list), adds a product and a courier
on the page, and a staff user takes an order (running total in pounds, a line removed), is told in words to
choose a courier, dispatches and delivers it and reads its timeline. Screenshots at 1400 and 420 px are kept
in tests.support.ARTEFACTS (the README shows them); at 420 px nothing is wider than the phone."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.signin import add_user, browser_sign_in
from tests.support import ARTEFACTS

pytestmark = pytest.mark.e2e
PHONE_WIDTH = 420


def shoot(page, name: str) -> None:
    """A full-page screenshot at 1400 px and at 420 px (and nothing wider than the phone at 420)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.screenshot(path=ARTEFACTS / f"{name}-1400.png", full_page=True)
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 900})
    page.screenshot(path=ARTEFACTS / f"{name}-420.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH, name
    page.set_viewport_size({"width": 1400, "height": 900})


def send(page, button: str, fields: dict[str, str]) -> None:
    """Fill in these fields of a form (selector: value) and press its button."""
    for selector, value in fields.items():
        page.fill(selector, value)
    page.click(button)


def watched_page(browser, problems: list[str]):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    # A script error or a CSP violation shows up here; the refusals this test provokes on purpose (422s) are
    # logged by Chromium as failed resources, which are the page working, not failing.
    page.on("console", lambda m: problems.append(f"{m.text} {m.location}")
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    return page


def test_an_admin_sets_up_the_shop_and_staff_take_dispatch_and_deliver_an_order(stack, browser, clean):
    url = stack.start_orders()
    add_user("ada", role="admin")
    add_user("sam", role="staff", branch="Leeds")
    problems: list[str] = []

    # --- the admin, on a shop with nothing in it yet -------------------------------------------------------
    page = watched_page(browser, problems)
    page.goto(f"{url}/app")
    browser_sign_in(page, "ada")
    page.wait_for_url(f"{url}/app")
    expect(page.locator("#no-products")).to_be_visible()             # no empty list to choose from
    expect(page.locator("#no-products")).to_contain_text("Add them under Products below")
    expect(page.locator("#order-submit")).to_be_disabled()
    shoot(page, "staff-page-empty")

    page.select_option("#product-size", "Large")
    send(page, "#product-submit", {"#product-name": "Flat white", "#product-price": "two pounds"})
    expect(page.locator("#message")).to_have_text("Give the price in pounds, like 2.45.")
    send(page, "#product-submit", {"#product-price": "2.45"})
    expect(page.locator("#notice")).to_have_text("Large Flat white added at £2.45.")
    send(page, "#product-submit", {"#product-name": "Tea", "#product-price": "1.20"})   # one size, no flavour
    expect(page.locator("#products-table tbody tr")).to_have_count(2)
    expect(page.locator("#products-table tbody")).to_contain_text("Tea")
    expect(page.locator("#no-products")).to_be_hidden()
    tea = page.locator("#products-table tbody tr", has_text="Tea")
    tea.get_by_role("button", name="Stop selling").click()                # no longer offered for orders
    expect(tea.locator("td[data-label='On sale']")).to_have_text("no")
    expect(page.locator("#item-product option", has_text="Tea")).to_have_count(0)
    tea.get_by_role("button", name="Sell again").click()
    expect(page.locator("#item-product option", has_text="Tea")).to_have_count(1)

    send(page, "#courier-submit", {"#courier-name": "Cora Courier", "#courier-phone": "call me",
                                   "#courier-branch": "Leeds"})
    expect(page.locator("#message")).to_have_text("Phone: must be a phone number (digits, spaces, +, -)")
    send(page, "#courier-submit", {"#courier-phone": "07700 900001", "#courier-branch": "Leeds Nowhere"})
    expect(page.locator("#message")).to_have_text("Branch: there is no branch of that name (check the spelling)")
    send(page, "#courier-submit", {"#courier-branch": "Leeds"})
    expect(page.locator("#notice")).to_have_text("Cora Courier added as a courier for Leeds.")
    expect(page.locator("#couriers-table tbody tr")).to_have_count(1)
    shoot(page, "staff-page-admin")
    page.click("#signout")
    page.wait_for_selector("#signin-form")
    page.close()

    # --- a staff user of Leeds runs an order through ---------------------------------------------------
    page = watched_page(browser, problems)
    page.goto(f"{url}/app")
    browser_sign_in(page, "sam")
    page.wait_for_url(f"{url}/app")
    expect(page.locator("#products")).to_have_count(0)                 # managing the menu is for admins
    page.locator("#item-product option", has_text="Flat white").wait_for(state="attached")
    expect(page.locator("#order-branch")).to_have_value("Leeds")

    page.fill("#order-name", "Page Customer")
    page.click("#order-submit")                                       # what is missing, in the form's words
    expect(page.locator("#message")).to_have_text("Fill in Address, Phone. Item 1: choose a product.")
    page.fill("#order-address", "2 Browser Lane")
    page.fill("#order-phone", "07700 900555")
    page.select_option("#order-payment", "CARD")
    page.select_option("#item-product", label="Large Flat white – £2.45")
    page.fill("#item-quantity", "2")
    expect(page.locator("#order-total")).to_have_text("£4.90")
    page.click("#add-item")
    second = page.locator(".item-line").nth(1)
    second.locator(".item-product").select_option(label="Tea – £1.20")
    expect(page.locator("#order-total")).to_have_text("£6.10")
    second.locator(".remove-item").click()                            # changed their mind
    expect(page.locator(".item-line")).to_have_count(1)
    expect(page.locator("#order-total")).to_have_text("£4.90")
    page.click("#order-submit")
    expect(page.locator("#notice")).to_have_text(re.compile(r"^Order \d+ taken: £4\.90\.$"))
    expect(page.locator("#order-total")).to_have_text("£0.00")         # the form is ready for the next one

    row = page.locator("#orders-table tbody tr").first
    expect(row.locator(".status")).to_have_text("Preparing")
    expect(row.locator("td[data-label=Total]")).to_have_text("£4.90")
    row.locator("button[data-action=out_for_delivery]").click()       # no courier yet: said in words
    expect(page.locator("#message")).to_contain_text("Choose a courier for order")
    row.locator("select.assign-courier").select_option(label="Cora Courier")
    expect(row.locator("td.courier")).to_have_text("Cora Courier")
    row.locator("button[data-action=out_for_delivery]").click()
    expect(row.locator(".status")).to_have_text("Out for delivery")
    shoot(page, "staff-page-order")
    row.locator("button[data-action=delivered]").click()
    expect(row.locator(".status")).to_have_text("Delivered")
    timeline = row.locator(".timeline li")
    expect(timeline).to_have_count(3)
    for index, words in enumerate(("Taken by sam", "Out for delivery by sam", "Delivered by sam")):
        expect(timeline.nth(index)).to_contain_text(words)
        expect(timeline.nth(index).locator("time")).to_have_text(re.compile(r"^\d{1,2} \w{3}(,)? \d\d:\d\d$"))
    assert "_" not in row.inner_text()                                # no raw status names anywhere
    page.click("#signout")
    page.wait_for_selector("#signin-form")
    page.close()

    assert problems == []
    with clean.connect() as conn:
        order = conn.execute(text("SELECT status, total, created_by, courier_id IS NOT NULL AS has_courier "
                                  "FROM orders.customer_order")).one()
        products = conn.execute(text("SELECT name, size, flavour, price FROM orders.product ORDER BY name")).all()
    assert (order.status, str(order.total), order.created_by, order.has_courier) == ("delivered", "4.90", "sam", True)
    assert [(p.name, p.size, p.flavour, str(p.price)) for p in products] == [
        ("Flat white", "Large", None, "2.45"), ("Tea", None, None, "1.20")]
