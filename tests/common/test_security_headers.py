"""Every response of every service says nosniff and carries a CSP; every HTML page forbids framing and
inline script (services/common/headers.py). Routes come from the apps' URL maps, so new ones are covered."""
from __future__ import annotations

import pytest

from tests.common.service_apps import SERVICES, create_apps, every_route
from tests.support import ADMIN_TOKEN


@pytest.fixture(scope="module")
def apps(engine, settings):
    return create_apps(settings)


def get_urls(app):
    return [url for method, url in every_route(app, static_file="swagger-ui.css") if method == "GET"]


def check(response, where: str) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("X-Frame-Options") == "DENY", where
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, where
    if response.mimetype == "text/html":
        script_src = next((d for d in csp.split(";") if d.strip().startswith(("script-src", "default-src"))), "")
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in csp, where


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_get_route_answers_with_the_security_headers(apps, service, clean):
    client = apps[service].test_client()
    pages = 0
    for url in get_urls(apps[service]):
        for headers in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
            response = client.get(url, headers=headers)
            check(response, f"{service} GET {url} {sorted(headers)}")
            pages += response.mimetype == "text/html"
    assert pages >= 2          # /docs at least, with and without a token
    for url, method in (("/no/such/route", "GET"), ("/healthz", "DELETE")):
        check(client.open(url, method=method), f"{service} {method} {url}")


def test_the_docs_page_has_no_inline_script(apps):
    page = apps["orders"].test_client().get("/docs").get_data(as_text=True)
    assert page.count("<script") == page.count("<script src=")
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()


def test_swagger_ui_renders_under_its_csp(stack, browser):
    url = stack.start_ingest()
    page = browser.new_page()
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        response = page.goto(f"{url}/docs")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.locator(".opblock").first.wait_for(timeout=30_000)     # the operations of /openapi.json
        assert page.locator(".opblock").count() >= 3
    finally:
        page.close()
    assert problems == [], problems
