"""Signing in as a person does, for the tests of every service's pages: users added with the `cafeflow user add`
command, the /signin form of orders (its CSRF token, then the post), and the one session carried to the
other services the way a browser carries a host's cookies to each of its ports."""
from __future__ import annotations

import re

from click.testing import CliRunner

from services.cli import main as cli
from services.common.sessions import CSRF_COOKIE, SESSION_COOKIE

PASSWORD = "a long enough password"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_user(name: str, role: str = "staff", branch: str | None = None, password: str = PASSWORD) -> None:
    result = CliRunner().invoke(cli, ["user", "add", name, "--role", role, *(["--branch", branch] if branch else [])],
                                input=f"{password}\n")
    assert result.exit_code == 0, result.output


def csrf_of(html: str) -> str:
    return _CSRF_FIELD.search(html).group(1)


def form_sign_in(orders_client, username: str, password: str = PASSWORD, next_url: str | None = None, **extra):
    """GET /signin (for its CSRF token), then POST the form; returns the POST's response (not followed)."""
    page = orders_client.get("/signin", query_string={"next": next_url} if next_url else {})
    assert page.status_code == 200, page.get_data(as_text=True)
    form = {"username": username, "password": password, "csrf_token": csrf_of(page.get_data(as_text=True)),
            **({"next": next_url} if next_url else {})}
    return orders_client.post("/signin", data=form, **extra)


def cookie(client, name: str = SESSION_COOKIE) -> str | None:
    found = client.get_cookie(name)
    return found.value if found else None


def carry_cookies(source, *targets) -> None:
    """What a browser does between 127.0.0.1:8001, :8002 and :8003: the host's cookies go to every port."""
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        value = cookie(source, name)
        for target in targets:
            if value is None:
                target.delete_cookie(name)
            else:
                target.set_cookie(name, value)


def browser_sign_in(page, username: str, password: str = PASSWORD) -> None:
    """On the sign-in page a browser was sent to: fill in the form and send it."""
    page.wait_for_selector("#signin-form")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#signin-submit")
