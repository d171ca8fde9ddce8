"""The branch portal (/portal, issue 16) as a Leeds manager meets it, in headless Chromium against the real
services (orders for the sign-in, ingest, a transform worker; gunicorn and Celery processes on 127.0.0.1): sign
in, send two of the branch's files at once and read their counts, drop in Birmingham's file and read the one
message naming both branches, send a broken file and read its rejection table, see which days are in with the
missing ones first, and the files sent before. Kept as screenshots at 1400 and 420 px (tests.support.ARTEFACTS)."""
from __future__ import annotations

import json

import httpx
import pytest
from playwright.sync_api import expect

from tests.signin import add_user, browser_sign_in
from tests.support import ARTEFACTS, REAL_FILES, Stack, reset_state

pytestmark = pytest.mark.e2e
LEEDS_25, LEEDS_27 = REAL_FILES / "leeds_25-08-2021_09-00-00.csv", REAL_FILES / "leeds_27-08-2021_09-00-00.csv"
BIRMINGHAM_25 = REAL_FILES / "birmingham_25-08-2021_09-00-00.csv"
# Markup in a file name is shown as text, never run.
BROKEN_NAME = "<img src=x onerror=window.hacked=1> leeds_26-08-2021_09-00-00.csv"


@pytest.fixture(scope="module")
def stack(engine, redis_client, tmp_path_factory):
    reset_state(engine, redis_client)
    add_user("mo", role="manager", branch="Leeds")
    running = Stack(tmp_path_factory.mktemp("portal"))
    running.start_orders()
    running.start_ingest()
    running.start_worker()
    yield running
    running.stop()


def rows_of(path) -> int:
    return len([line for line in path.read_text().splitlines() if line.strip()])


def broken_file(tmp_path):
    """Leeds's 26th with three rows broken as tills break them: a total that disagrees with the basket, a
    payment method that is neither CASH nor CARD, and a last line cut short."""
    lines = (REAL_FILES / "leeds_26-08-2021_09-00-00.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[-3] = "999.99"                              # the total (the basket's quoted commas are before it)
    lines[1] = ",".join(cells)
    lines[3] = lines[3].replace(",CARD,", ",VOUCHER,").replace(",CASH,", ",VOUCHER,")
    lines[-1] = lines[-1][:40]
    path = tmp_path / BROKEN_NAME
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_manager_sends_files_and_sees_what_became_of_them(stack, browser, tmp_path):
    ingest, orders = stack.url_of("ingest"), stack.url_of("orders")
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-GB", timezone_id="Europe/London")
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

    page.goto(f"{ingest}/portal")                   # not signed in: to the one sign-in, and back
    assert page.url.startswith(f"{orders}/signin?next=")
    browser_sign_in(page, "mo")
    page.wait_for_url(f"{ingest}/portal")
    page.wait_for_selector("body[data-loaded=true]")
    expect(page.locator("h1")).to_have_text("Branch files: Leeds")
    expect(page.locator("#history-count")).to_have_text("No file sent yet.")

    # Two of the branch's own files at once: each says its counts in words.
    page.set_input_files("#file-input", [str(LEEDS_25), str(LEEDS_27)])
    for path in (LEEDS_25, LEEDS_27):
        card = page.locator(".file", has_text=path.name)
        expect(card).to_have_attribute("data-state", "clean", timeout=60_000)
        expect(card.locator(".file-state")).to_have_text("Loaded")
        expect(card.locator(".summary")).to_have_text(
            f"Every row taken (loaded {rows_of(path)}, already had 0, rejected 0).")
        expect(card.locator(".count-loaded dd")).to_have_text(str(rows_of(path)))

    # Birmingham's file dragged in by mistake: one message naming both branches, not one per row.
    drop_file(page, BIRMINGHAM_25)
    card = page.locator(".file", has_text=BIRMINGHAM_25.name)
    expect(card).to_have_attribute("data-state", "all_rejected", timeout=60_000)
    expect(card.locator(".rejections tbody tr")).to_have_count(1)
    rows = rows_of(BIRMINGHAM_25)
    expect(card.locator(".rejections .reason")).to_have_text(
        f"this file is for Birmingham; this upload is for Leeds ({rows} rows not loaded)")
    expect(card.locator(".count-rejected dd")).to_have_text(str(rows))

    # A broken file: its rejection table, line by line, with the rows masked.
    broken = broken_file(tmp_path)
    page.set_input_files("#file-input", str(broken))
    card = page.locator(".file", has_text=BROKEN_NAME)
    expect(card).to_have_attribute("data-state", "partial", timeout=60_000)
    table = card.locator(".rejections tbody tr")
    expect(table).to_have_count(3)
    assert table.locator(".line").all_text_contents() == ["2", "4", str(rows_of(broken))]
    reasons = table.locator(".reason").all_text_contents()
    assert reasons[0].startswith("the total does not match the basket") and "CASH or CARD" in reasons[1]
    masked = " ".join(table.locator(".row").all_text_contents())
    first_customer = (REAL_FILES / "leeds_26-08-2021_09-00-00.csv").read_text().splitlines()[1].split(",")[2]
    assert "<customer>" in masked and first_customer not in masked
    assert page.evaluate("window.hacked") is None and page.locator("img").count() == 0

    # Which days are in: the week of these files, missing days first.
    page.fill("#coverage-from", "2021-08-24")
    page.fill("#coverage-to", "2021-08-31")
    page.click("#coverage-submit")
    days = page.locator(".branch-days", has_text="Leeds")
    expect(days.locator(".days-summary")).to_have_text("3 of 8 days in; 5 days not.")
    groups = days.locator(".day-group h4").all_text_contents()
    assert groups == ["Missing: no file yet (5)", "In (3)"]
    assert days.locator(".group-missing .day").all_text_contents() == [
        "Tue, 24 Aug 2021", "Sat, 28 Aug 2021", "Sun, 29 Aug 2021", "Mon, 30 Aug 2021", "Tue, 31 Aug 2021"]
    expect(days.locator(".group-loaded .day").first).to_contain_text("Wed, 25 Aug 2021")

    # The files sent before, newest first, the broken one's rejections a click away.
    expect(page.locator("#history-count")).to_have_text("4 files sent.")
    history = page.locator("#history-table tbody tr[data-outcome]")
    assert history.locator(".file-name").all_text_contents()[0] == BROKEN_NAME
    history.first.locator(".show-rejections").click()
    expect(page.locator("#history-table .details .rejections tbody tr")).to_have_count(3)

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTEFACTS / "portal-1400.png", full_page=True)
    page.set_viewport_size({"width": 420, "height": 900})
    page.screenshot(path=ARTEFACTS / "portal-420.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420     # nothing wider than a phone
    assert problems == []

    page.click("#signout")                          # one sign-out for every page
    page.wait_for_url(f"{orders}/signin?signed_out=1")
    page.goto(f"{ingest}/portal")
    assert page.url.startswith(f"{orders}/signin?next=")
    context.close()


def drop_file(page, path) -> None:
    """What a browser does when a file is dragged onto the drop zone: a drop event carrying it."""
    page.evaluate("""([name, text]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], name, {type: "text/csv"}));
        document.getElementById("drop").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", [path.name, path.read_text()])


def test_the_page_is_strict_and_needs_a_sign_in(stack):
    ingest = stack.url_of("ingest")
    page = httpx.get(f"{ingest}/portal")
    assert page.status_code == 303 and "/signin?next=" in page.headers["Location"]
    for asset in ("/portal/portal.js", "/portal/portal.css"):
        assert httpx.get(f"{ingest}{asset}").status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    # Sign-out is a form post with the page's CSRF token: another site's form cannot sign anyone out.
    assert httpx.post(f"{ingest}/portal/signout").status_code == 400
    assert json.loads(httpx.get(f"{ingest}/v1/coverage").text)["error"]["code"] == "unauthorized"
