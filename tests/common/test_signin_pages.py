"""One sign-in for every page, as a person meets it, in headless Chromium against the real services (orders
and reporting under gunicorn on their own ports of 127.0.0.1, as in development): the dashboard sends the
browser to sign in and back, the staff page on the other port is signed in already, signing out on either
ends both, a copied cookie stops working, refusals are said in words, `next` cannot lead elsewhere, another
site's form cannot sign anyone in, and a manager sees their branch only. The sign-in page is kept as
screenshots at 1400 and 420 px (tests.support.ARTEFACTS)."""
from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.reporting.conftest import load_files
from tests.signin import add_user, browser_sign_in
from tests.support import ADMIN_TOKEN, ARTEFACTS, REAL_BRANCHES, REAL_FILES, Stack, reset_state

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FILES = ["leeds_31-08-2021_09-00-00.csv", "chesterfield_31-08-2021_09-00-00.csv"]


@pytest.fixture(scope="module")
def stack(engine, redis_client, settings, celery_app, tmp_path_factory):
    """Two branches' sales, an order at each, an admin, a Leeds manager and Leeds staff; orders and reporting."""
    reset_state(engine, redis_client)
    load_files(settings, celery_app, [REAL_FILES / name for name in FILES])
    add_user("ada", role="admin")
    add_user("mo", role="manager", branch="Leeds")
    add_user("sam", role="staff", branch="Leeds")
    running = Stack(tmp_path_factory.mktemp("signin"))
    orders = running.start_orders()
    running.start_reporting()
    with httpx.Client(base_url=orders, headers=ADMIN, timeout=10) as client:
        latte = client.post("/v1/products", json={"name": "Latte", "size": "Large", "flavour": None, "price": "2.45"})
        for branch, customer in (("Leeds", "Leeds Customer"), ("Chesterfield", "Chesterfield Customer")):
            order = client.post("/v1/orders", json={
                "branch": branch, "customer_name": customer, "customer_address": "1 Road",
                "customer_phone": "07700 900123", "payment_method": "CASH", "courier_id": None,
                "items": [{"product_id": latte.json()["id"], "quantity": 1}]})
            assert order.status_code == 201, order.text
    yield running
    running.stop()


@pytest.fixture
def context(browser):
    opened = browser.new_context(viewport={"width": 1400, "height": 900})
    yield opened
    opened.close()


def dashboard_loaded(page) -> None:
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)


def session_cookie(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "cafeflow_session")


def test_one_sign_in_for_the_dashboard_and_the_staff_page_and_one_sign_out(stack, context):
    orders, reporting = stack.url_of("orders"), stack.url_of("reporting")
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    page.goto(f"{reporting}/dashboard")
    assert page.url == f"{orders}/signin?next={quote(reporting + '/dashboard', safe='')}"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTEFACTS / "signin-1400.png", full_page=True)
    page.set_viewport_size({"width": 420, "height": 900})
    page.screenshot(path=ARTEFACTS / "signin-420.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420        # nothing wider than a phone
    browser_sign_in(page, "ada", "not the password")
    expect(page.locator("#error")).to_have_text("Wrong username or password.")
    page.screenshot(path=ARTEFACTS / "signin-wrong-password-420.png", full_page=True)
    page.set_viewport_size({"width": 1400, "height": 900})

    browser_sign_in(page, "ada")                   # lands back on the dashboard it came from
    dashboard_loaded(page)
    assert page.url.startswith(f"{reporting}/dashboard?from=")      # the view it opened on, in the URL
    expect(page.locator("#who")).to_have_text("Signed in as ada (admin)")
    page.screenshot(path=ARTEFACTS / "dashboard-signed-in-1400.png")

    page.goto(f"{orders}/app")                     # the other port: signed in already
    assert page.url == f"{orders}/app"
    expect(page.locator("#who")).to_have_text("Signed in as ada (admin)")
    expect(page.locator("#orders-count")).to_have_text("2 orders")
    page.screenshot(path=ARTEFACTS / "staff-page-signed-in-1400.png")
    copied = session_cookie(context)

    page.click("#signout")                         # signing out on the staff page ...
    page.wait_for_url(f"{orders}/signin?signed_out=1")
    expect(page.locator("#notice")).to_have_text("You are signed out of every cafeflow page.")
    page.goto(f"{reporting}/dashboard")            # ... signs the dashboard out too
    assert page.url.startswith(f"{orders}/signin?next=")
    for url in (f"{reporting}/v1/reports/trend", f"{orders}/v1/orders"):       # and a copy of the cookie
        assert httpx.get(url, cookies={"cafeflow_session": copied}).status_code == 401

    browser_sign_in(page, "ada")                   # and the other way round: out on the dashboard ...
    dashboard_loaded(page)
    page.click("#signout")
    page.wait_for_url(f"{orders}/signin?signed_out=1")
    page.goto(f"{orders}/app")                     # ... is out on the staff page
    assert page.url.startswith(f"{orders}/signin?next=")
    assert "cafeflow_session" not in {c["name"] for c in context.cookies()}
    assert problems == []


def test_a_manager_sees_only_their_branch(stack, context):
    orders, reporting = stack.url_of("orders"), stack.url_of("reporting")
    seen = {}
    for username in ("mo", "ada"):
        page = context.new_page()
        page.goto(f"{reporting}/dashboard")
        browser_sign_in(page, username)
        dashboard_loaded(page)
        branches = page.eval_on_selector_all("#chart-branches tbody th", "nodes => nodes.map(n => n.textContent)")
        options = page.eval_on_selector_all("#branch option", "nodes => nodes.map(n => n.value).filter(Boolean)")
        page.goto(f"{orders}/app")
        page.locator("#orders-table tbody tr").first.wait_for()
        customers = page.eval_on_selector_all("#orders-table tbody tr td:nth-child(3)",
                                              "nodes => nodes.map(n => n.textContent)")
        seen[username] = (sorted(branches), options, sorted(customers))
        page.click("#signout")
        page.wait_for_url("**/signin?signed_out=1")
        page.close()
    assert seen["mo"] == (["Leeds"], ["Leeds"], ["Leeds Customer"])
    # An admin is offered every registered branch, also those without sales in the range (issue 15).
    assert seen["ada"] == (["Chesterfield", "Leeds"], sorted(REAL_BRANCHES, key=str.lower),
                           ["Chesterfield Customer", "Leeds Customer"])


@pytest.mark.parametrize("elsewhere", ["https://evil.example/steal", "//evil.example/steal"])
def test_a_next_pointing_elsewhere_is_refused(stack, context, elsewhere):
    orders = stack.url_of("orders")
    page = context.new_page()
    outside = []
    page.on("request", lambda request: outside.append(request.url)
            if urlsplit(request.url).hostname == "evil.example" else None)
    page.goto(f"{orders}/signin?next={quote(elsewhere, safe='')}")
    expect(page.locator("#notice")).to_contain_text("That was refused: you will go to the staff page instead.")
    browser_sign_in(page, "sam")
    page.wait_for_url(f"{orders}/app")
    expect(page.locator("#who")).to_have_text("Signed in as sam (staff, Leeds)")
    assert outside == []


def test_another_sites_form_cannot_sign_the_browser_in(stack, context, tmp_path):
    """Login CSRF: a page on another site (localhost is another site than 127.0.0.1) posts the attacker's
    credentials to the sign-in form; the browser must not end up signed in as the attacker."""
    orders = stack.url_of("orders")
    (tmp_path / "evil.html").write_text(
        f'<form id="f" method="post" action="{orders}/signin"><input name="username" value="sam">'
        '<input name="password" value="a long enough password"><input name="csrf_token" value="guessed"></form>'
        '<script>document.getElementById("f").submit()</script>')
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = context.new_page()
    try:
        page.goto(f"{orders}/signin")              # the victim has the sign-in page's CSRF cookie already
        with page.expect_response(f"{orders}/signin") as posted:
            page.goto(f"http://localhost:{server.server_address[1]}/evil.html")
        assert posted.value.status == 400
        expect(page.locator("h1")).to_have_text("This form cannot be sent")
        assert "cafeflow_session" not in {c["name"] for c in context.cookies()}
    finally:
        server.shutdown()


def forget_login_attempts(redis_client) -> None:
    """Every test signs in from 127.0.0.1: the address's count starts afresh for this one, and after it."""
    for key in redis_client.scan_iter("*orders-login*"):
        redis_client.delete(key)


def test_the_throttle_says_when_to_try_again(stack, context, settings, redis_client):
    orders = stack.url_of("orders")
    page = context.new_page()
    forget_login_attempts(redis_client)
    try:
        page.goto(f"{orders}/signin")
        for _ in range(settings.login_max_failures):
            browser_sign_in(page, "sam", "a guess")
            expect(page.locator("#error")).to_have_text("Wrong username or password.")
        browser_sign_in(page, "sam")               # the right password, too late
        expect(page.locator("#error")).to_contain_text("Too many sign-in attempts for this account or from this "
                                                       "address. Wait")
        expect(page.locator("#error")).to_contain_text("and try again.")
        assert "cafeflow_session" not in {c["name"] for c in context.cookies()}
    finally:
        forget_login_attempts(redis_client)
