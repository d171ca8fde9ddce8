"""The orders service as deployed (gunicorn via `cafeflow serve orders`): data survives a restart, and
the staff page works in headless Chromium."""
from __future__ import annotations

import concurrent.futures
import socket
import time

import httpx
import pytest
from click.testing import CliRunner
from playwright.sync_api import expect
from sqlalchemy import text

from services.cli import main
from tests.signin import browser_sign_in
from tests.support import ADMIN_TOKEN

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _seed(url: str) -> dict:
    with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as client:
        latte = client.post("/v1/products", json={"name": "Latte", "size": "Large", "flavour": None, "price": "2.45"})
        courier = client.post("/v1/couriers", json={"name": "Cora Courier", "phone": "07700900001", "branch": "Leeds"})
        assert latte.status_code == courier.status_code == 201
        return {"latte": latte.json(), "courier": courier.json()}


def _create_order(client: httpx.Client, seeded: dict, name: str, address: str, phone: str, quantity: int) -> dict:
    created = client.post("/v1/orders", json={
        "branch": "Leeds", "customer_name": name, "customer_address": address, "customer_phone": phone,
        "payment_method": "CASH", "courier_id": seeded["courier"]["id"],
        "items": [{"product_id": seeded["latte"]["id"], "quantity": quantity}]})
    assert created.status_code == 201, created.text
    return created


def test_orders_survive_a_restart_of_the_service(stack):
    url = stack.start_orders()
    seeded = _seed(url)
    with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as client:
        created = _create_order(client, seeded, "Restart Tester", "1 Road", "07700900999", quantity=3)
        before = client.get(created.headers["Location"]).json()
    stack.stop()                                   # every gunicorn process gone
    stack.processes.clear()
    url = stack.start_orders()
    with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as client:
        after = client.get(f"/v1/orders/{before['id']}")
        assert after.status_code == 200 and after.json() == before
        assert after.json()["total"] == "7.35"
        assert client.get("/v1/products").json()["total"] == 1


def test_staff_page_log_in_take_an_order_deliver_it_and_find_it(stack, browser, clean):
    url = stack.start_orders()
    _seed(url)
    added = CliRunner().invoke(main, ["user", "add", "sam", "--role", "staff", "--branch", "Leeds"],
                               input="page-test-password\n")
    assert added.exit_code == 0, added.output

    page = browser.new_page()
    outside = []
    page.on("request", lambda request: None if request.url.startswith(url) else outside.append(request.url))
    console_errors = []             # a CSP violation (say, an inline script) shows up here
    page.on("console", lambda message: console_errors.append(f"{message.text} {message.location}")
            if message.type == "error" else None)
    try:
        page.goto(f"{url}/app")                   # sent to sign in, and back
        browser_sign_in(page, "sam", "page-test-password")
        page.wait_for_url(f"{url}/app")
        # Locator waits, not wait_for_function: the page's CSP forbids the eval that the latter polls with.
        page.locator("#item-product option", has_text="Latte").wait_for(state="attached")

        expect(page.locator("#order-branch")).to_have_value("Leeds")     # their branch, not to be changed
        page.fill("#order-name", "Page Customer")
        page.fill("#order-address", "2 Browser Lane")
        page.fill("#order-phone", "07700 900555")
        page.select_option("#order-payment", "CARD")
        page.select_option("#item-product", label="Large Latte – £2.45")
        page.fill("#item-quantity", "2")
        page.click("#order-submit")
        row = page.locator("#orders-table tbody tr").first
        row.locator(".status", has_text="Preparing").wait_for()

        row.locator("select.assign-courier").select_option(label="Cora Courier")
        page.locator("#orders-table tbody tr td.courier", has_text="Cora Courier").wait_for()
        page.locator("#orders-table tbody tr").first.locator("button[data-action=out_for_delivery]").click()
        page.locator("#orders-table tbody tr .status", has_text="Out for delivery").wait_for()
        page.locator("#orders-table tbody tr").first.locator("button[data-action=delivered]").click()
        page.locator("#orders-table tbody tr .status", has_text="Delivered").wait_for()

        # Find it again by the filters.
        page.select_option("#filter-status", "delivered")
        page.fill("#filter-phone", "07700900555")
        page.click("#filter-submit")
        expect(page.locator("#orders-count")).to_have_text("1 order")
        assert "Page Customer" in page.locator("#orders-table tbody").inner_text()
        assert page.locator("#message").inner_text() == ""

        # No credential in the page's storage; signing out ends the session on the server, not only in this tab.
        assert page.evaluate("Object.keys(sessionStorage).length + Object.keys(localStorage).length") == 0
        session = next(c["value"] for c in page.context.cookies() if c["name"] == "cafeflow_session")
        page.click("#signout")
        page.wait_for_selector("#signin-form")
        assert httpx.get(f"{url}/v1/products", cookies={"cafeflow_session": session}).status_code == 401
    finally:
        page.close()
    assert outside == []                           # no CDN, nothing outside the service
    assert console_errors == [], console_errors
    with clean.connect() as conn:
        order = conn.execute(text("SELECT status, total, created_by FROM orders.customer_order")).one()
        assert conn.execute(text("SELECT count(*) FROM orders.outbox")).scalar() == 1
    assert (order.status, str(order.total), order.created_by) == ("delivered", "4.90", "sam")


def test_the_service_keeps_connections_alive_and_answers_concurrent_requests(stack):
    """`cafeflow serve` runs threaded workers: a client's connection is reused (sync workers close every
    one), and 16 requests at once all get their answer."""
    url = stack.start_orders()
    _seed(url)
    with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as client:
        first = client.get("/v1/products")
        assert first.status_code == 200 and first.headers.get("connection", "").lower() != "close"
        assert client.get("/v1/products").status_code == 200

    def fetch(_):
        return httpx.get(f"{url}/v1/products", headers=ADMIN, timeout=10).json()["total"]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert list(pool.map(fetch, range(16))) == [1] * 16

    # An idle connection stays open longer than gunicorn's default 2 s (a proxy in front keeps its own
    # upstream connections for a minute): the second request on the same socket, 3 s later, is answered.
    host, port = url.removeprefix("http://").split(":")
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        for _ in range(2):
            conn.sendall(request)
            assert _read_response(conn).startswith(b"HTTP/1.1 200")
            time.sleep(3)


def _read_response(conn: socket.socket) -> bytes:
    """One whole HTTP response (headers, then Content-Length bytes): they may arrive in several packets."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = conn.recv(4096)
        assert chunk, f"connection closed inside the body after {data!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_staff_page_enters_the_details_of_an_erased_open_order_again(stack, browser, clean, run_task):
    url = stack.start_orders()
    seeded = _seed(url)
    with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as client:
        _create_order(client, seeded, "Forgotten Caller", "1 Old Road", "07700900444", quantity=1)
    with clean.begin() as conn:
        conn.execute(text("UPDATE orders.customer_order SET updated_at = now() - interval '400 days'"))
    assert run_task("transform.erase_order_customer_details") == 1
    added = CliRunner().invoke(main, ["user", "add", "sam", "--role", "staff", "--branch", "Leeds"],
                               input="page-test-password\n")
    assert added.exit_code == 0, added.output

    page = browser.new_page()
    try:
        page.goto(f"{url}/app")
        browser_sign_in(page, "sam", "page-test-password")
        row = page.locator("#orders-table tbody tr").first
        row.locator("td", has_text="(details erased)").wait_for()
        expect(row.locator("button[data-action]")).to_have_count(1)         # cancel only
        row.locator("input[name=customer_name]").fill("Caller Again")
        row.locator("input[name=customer_address]").fill("2 New Road")
        row.locator("input[name=customer_phone]").fill("07700 900445")
        row.locator(".reenter-details button").click()
        row = page.locator("#orders-table tbody tr").first
        row.locator("td", has_text="Caller Again").wait_for()
        expect(row.locator(".reenter-details")).to_have_count(0)
        row.locator("button[data-action=out_for_delivery]").click()
        page.locator("#orders-table tbody tr .status", has_text="Out for delivery").wait_for()
    finally:
        page.close()
    with clean.connect() as conn:
        order = conn.execute(text("SELECT status, customer_address, customer_details_erased_at "
                                  "FROM orders.customer_order")).one()
    assert (order.status, order.customer_address, order.customer_details_erased_at) == (
        "out_for_delivery", "2 New Road", None)
