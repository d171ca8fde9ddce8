"""One sign-in for every page (services/common/signin.py, orders' /signin): one session, read by the pages and
the page calls of all three services, re-checked against the user's row on every request, ended everywhere
by a sign-out on any page; the form takes only its own CSRF token, says what went wrong in words, is
throttled with the token endpoint, sends the browser back only to our own pages, and answers 503 (never 500)
while Redis or the accounts' database does not answer."""
from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from flask_wtf.csrf import generate_csrf
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.common.sessions import CSRF_COOKIE, SESSION_COOKIE, SESSION_KEY_PREFIX
from tests.signin import PASSWORD, add_user, carry_cookies, cookie, csrf_of, form_sign_in
from tests.support import ADMIN_TOKEN, free_port

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DASHBOARD = "http://127.0.0.1:8003/dashboard"       # the development default of CAFEFLOW_REPORTING_URL


@pytest.fixture
def apps(settings, clean):
    from services.ingest.app import create_app as ingest
    from services.orders.app import create_app as orders
    from services.reporting.app import create_app as reporting

    return {"orders": orders(settings), "reporting": reporting(settings), "ingest": ingest(settings)}


@pytest.fixture
def browser_of(apps):
    """One browser: a test client per service, holding the host's cookies as a browser holds them."""
    def make():
        clients = {name: app.test_client() for name, app in apps.items()}
        clients["sync"] = lambda: carry_cookies(clients["orders"], clients["reporting"], clients["ingest"])
        return clients
    return make


def signed_in(browser_of, username: str, **user):
    add_user(username, **user)
    browser = browser_of()
    response = form_sign_in(browser["orders"], username)
    assert response.status_code == 303, response.get_data(as_text=True)
    browser["sync"]()
    return browser


def everything_works(browser) -> dict[str, int]:
    return {"orders page": browser["orders"].get("/app").status_code,
            "orders api": browser["orders"].get("/v1/products").status_code,
            "dashboard": browser["reporting"].get("/dashboard").status_code,
            "reports api": browser["reporting"].get("/v1/reports/trend").status_code,
            "ingest api": browser["ingest"].get("/v1/uploads").status_code}


SIGNED_IN = {"orders page": 200, "orders api": 200, "dashboard": 200, "reports api": 200, "ingest api": 200}
SIGNED_OUT = {"orders page": 303, "orders api": 401, "dashboard": 303, "reports api": 401, "ingest api": 401}


def test_one_sign_in_serves_every_page_and_its_calls(browser_of, redis_client):
    add_user("ann", role="admin")
    browser = browser_of()
    response = form_sign_in(browser["orders"], "ann", next_url=DASHBOARD)
    assert response.status_code == 303 and response.headers["Location"] == DASHBOARD
    set_cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie
    assert "Domain" not in set_cookie               # the host's own: every port of it, no other host
    session_id = cookie(browser["orders"])
    assert session_id and len(session_id) >= 40 and PASSWORD not in set_cookie
    stored = redis_client.keys(SESSION_KEY_PREFIX + "*")
    assert len(stored) == 1 and session_id.encode() not in stored[0]        # keyed by a digest of the id
    browser["sync"]()
    assert everything_works(browser) == SIGNED_IN
    assert "Signed in as <strong>ann</strong> (admin)" in browser["reporting"].get("/dashboard").get_data(as_text=True)


def test_the_cookie_domain_setting_shares_the_session_with_sub_domains(settings, clean):
    from services.orders.app import create_app

    add_user("ann")
    app = create_app(settings.model_copy(update={"session_cookie_domain": "cafeflow.example.com",
                                                 "orders_public_url": "https://orders.cafeflow.example.com"}))
    client = app.test_client()
    page = client.get("/signin", base_url="https://orders.cafeflow.example.com")
    response = client.post("/signin", base_url="https://orders.cafeflow.example.com",
                           headers={"Referer": "https://orders.cafeflow.example.com/signin"},
                           data={"username": "ann", "password": PASSWORD, "csrf_token": csrf_of(page.get_data(True))})
    assert response.status_code == 303, response.get_data(as_text=True)
    set_cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(SESSION_COOKIE + "="))
    assert "Domain=cafeflow.example.com" in set_cookie


@pytest.mark.parametrize("where", ["orders", "reporting"])
def test_signing_out_on_any_page_ends_the_session_on_every_page(browser_of, redis_client, where):
    browser = signed_in(browser_of, "ann", role="admin")
    copied = cookie(browser["orders"])
    other_browser = browser_of()                   # the same user in another browser keeps its session
    assert form_sign_in(other_browser["orders"], "ann").status_code == 303
    other_browser["sync"]()
    token = browser["orders"].post("/v1/auth/token", json={"username": "ann", "password": PASSWORD}).get_json()

    client, page, action = {"orders": (browser["orders"], "/app", "/signout"),
                            "reporting": (browser["reporting"], "/dashboard", "/dashboard/signout")}[where]
    csrf = csrf_of(client.get(page).get_data(as_text=True))
    response = client.post(action, data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["Location"] == "http://127.0.0.1:8002/signin?signed_out=1"
    assert len(redis_client.keys(SESSION_KEY_PREFIX + "*")) == 1          # only the other browser's is left

    thief = browser_of()                           # a copy of the cookie taken before the sign-out
    for client in (thief["orders"], thief["reporting"], thief["ingest"]):
        client.set_cookie(SESSION_COOKIE, copied)
    assert everything_works(thief) == SIGNED_OUT
    browser["sync"]()
    assert everything_works(browser) == SIGNED_OUT
    assert everything_works(other_browser) == SIGNED_IN
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert browser["orders"].get("/v1/products", headers=bearer).status_code == 200   # tokens are not ended


def test_a_session_is_rechecked_against_the_user_on_every_request(browser_of, clean):
    """Deactivation, a new password and a role change end the session at once, on every service."""
    for name, change in (("ann", "active = false"), ("bob", "password_hash = 'scrypt$changed'"),
                         ("cat", "role = 'admin'")):
        browser = signed_in(browser_of, name, branch="Leeds")
        assert everything_works(browser) == SIGNED_IN
        with clean.begin() as conn:
            conn.execute(text(f"UPDATE orders.app_user SET {change} WHERE username = :u"), {"u": name})
        assert everything_works(browser) == SIGNED_OUT, change


def test_the_sign_in_form_takes_only_its_own_csrf_token(apps, redis_client):
    """Login CSRF: another site's form would sign the victim's browser in as the attacker."""
    add_user("ann")
    client = apps["orders"].test_client()
    client.get("/signin")                          # the victim has the sign-in page's CSRF cookie already
    for extra in ({}, {"csrf_token": "forged.token"}):
        response = client.post("/signin", data={"username": "ann", "password": PASSWORD, **extra},
                               headers={"Origin": "https://evil.example", "Referer": "https://evil.example/"})
        assert response.status_code == 400 and response.mimetype == "text/html"
        assert "This form cannot be sent" in response.get_data(as_text=True)
    assert cookie(client) is None and redis_client.keys(SESSION_KEY_PREFIX + "*") == []
    # Sign-out forms too: another site cannot sign a browser out.
    assert client.post("/signout").status_code == 400
    assert apps["reporting"].test_client().post("/dashboard/signout").status_code == 400


def test_a_refused_sign_in_says_why_in_words(apps, redis_client):
    add_user("ann")
    client = apps["orders"].test_client()
    for username, password in (("ann", "not the password"), ("nobody", PASSWORD), ("ann\x00", PASSWORD),
                               ("a" * 500, PASSWORD), ("ann", "")):
        page = client.get("/signin").get_data(as_text=True)
        response = client.post("/signin", data={"username": username, "password": password,
                                                "csrf_token": csrf_of(page)})
        assert response.status_code == 401, (username, response.status_code)
        assert response.mimetype == "text/html"
        assert "Wrong username or password." in response.get_data(as_text=True)
        redis_client.delete(*redis_client.keys("*orders-login*") or ["none"])     # not what this test is about
    assert cookie(client) is None


def test_the_form_and_the_token_endpoint_share_one_throttle(apps, settings):
    add_user("ann")
    client = apps["orders"].test_client()
    for attempt in range(settings.login_max_failures):
        refused = form_sign_in(client, "ann", "guess")
        assert refused.status_code == 401, attempt
    blocked = form_sign_in(client, "ANN", PASSWORD)
    assert blocked.status_code == 429 and blocked.mimetype == "text/html"
    assert 0 < int(blocked.headers["Retry-After"]) <= settings.login_failure_window_seconds
    assert "Too many sign-in attempts for this account or from this address. Wait" in blocked.get_data(as_text=True)
    assert cookie(client) is None
    token = client.post("/v1/auth/token", json={"username": "ann", "password": PASSWORD},
                        environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert token.status_code == 429 and token.get_json()["error"]["code"] == "too_many_requests"


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/dashboard", "http://127.0.0.1:8003@evil.example/",
    "http://evil.example/?http://127.0.0.1:8003", "/\\evil.example", "http:\\\\evil.example",
    "javascript:alert(1)", "http://127.0.0.1:8003.evil.example/", "https://127.0.0.1:8003/dashboard",
    " http://evil.example", "/\t/evil.example", "data:text/html,hi", "http://127.0.0.1:9999/",
])
def test_a_next_outside_the_services_is_refused(apps, target):
    add_user("ann")
    client = apps["orders"].test_client()
    page = client.get("/signin", query_string={"next": target}).get_data(as_text=True)
    assert "That was refused: you will go to the staff page instead." in page
    assert 'name="next"' not in page
    response = client.post("/signin", data={"username": "ann", "password": PASSWORD, "next": target,
                                            "csrf_token": csrf_of(page)})
    assert response.status_code == 303 and response.headers["Location"] == "/app", target


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:8003/dashboard?from=2021-08-25&branch=Leeds", "http://127.0.0.1:8001/portal",
    "http://127.0.0.1:8002/app", "/app",
])
def test_a_next_to_a_page_of_the_services_is_followed(apps, target):
    add_user("ann")
    response = form_sign_in(apps["orders"].test_client(), "ann", next_url=target)
    assert response.status_code == 303 and response.headers["Location"] == target


def test_a_page_sends_the_browser_to_sign_in_and_back(apps):
    response = apps["reporting"].test_client().get("/dashboard?branch=Leeds", base_url="http://evil.example")
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://127.0.0.1:8002/signin"
    # built from the configured public URL, not the request's Host header
    assert parse_qs(location.query) == {"next": ["http://127.0.0.1:8003/dashboard?branch=Leeds"]}
    assert apps["orders"].test_client().get("/app").headers["Location"] == (
        "http://127.0.0.1:8002/signin?next=http%3A%2F%2F127.0.0.1%3A8002%2Fapp")


def test_redis_down_pages_and_apis_answer_503_with_retry_after(browser_of, settings):
    from services.ingest.app import create_app as ingest
    from services.orders.app import create_app as orders
    from services.reporting.app import create_app as reporting

    browser = signed_in(browser_of, "ann", role="admin")
    down_settings = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    down = {"orders": orders(down_settings).test_client(), "reporting": reporting(down_settings).test_client(),
            "ingest": ingest(down_settings).test_client()}
    carry_cookies(browser["orders"], *down.values())
    csrf = csrf_of(browser["orders"].get("/signin").get_data(as_text=True))
    carry_cookies(browser["orders"], *down.values())
    pages = [down["orders"].get("/app"), down["reporting"].get("/dashboard"), down["orders"].get("/signin"),
             down["orders"].post("/signin", data={"username": "ann", "password": PASSWORD, "csrf_token": csrf})]
    for response in pages:
        assert response.status_code == 503 and response.mimetype == "text/html", response.get_data(as_text=True)
        assert int(response.headers["Retry-After"]) > 0
        assert "Signing in is unavailable for a moment" in response.get_data(as_text=True)
    apis = [down["orders"].get("/v1/orders"), down["reporting"].get("/v1/reports/trend"),
            down["ingest"].get("/v1/uploads")]
    for response in apis:
        assert response.status_code == 503, response.get_data(as_text=True)
        assert int(response.headers["Retry-After"]) > 0
        assert response.get_json()["error"]["code"] == "session_store_unavailable"


def test_accounts_database_down_pages_and_apis_answer_503(browser_of, settings):
    from services.orders.app import create_app as orders
    from services.reporting.app import create_app as reporting

    browser = signed_in(browser_of, "ann", role="admin")
    dead = settings.database_url.replace(":5432/", f":{free_port()}/")
    assert dead != settings.database_url
    down_settings = settings.model_copy(update={"database_url": dead})
    down = {"orders": orders(down_settings).test_client(), "reporting": reporting(down_settings).test_client()}
    carry_cookies(browser["orders"], *down.values())
    csrf = csrf_of(browser["orders"].get("/signin").get_data(as_text=True))
    carry_cookies(browser["orders"], *down.values())
    for response in (down["reporting"].get("/dashboard"), down["orders"].get("/app"),
                     down["orders"].post("/signin", data={"username": "ann", "password": PASSWORD,
                                                          "csrf_token": csrf})):
        assert response.status_code == 503 and response.mimetype == "text/html", response.get_data(as_text=True)
        assert int(response.headers["Retry-After"]) > 0
    for response, code in ((down["orders"].get("/v1/orders"), "accounts_unavailable"),
                           # reporting opens its snapshot before it asks who is calling
                           (down["reporting"].get("/v1/reports/trend"), "database_unavailable")):
        assert response.status_code == 503 and response.get_json()["error"]["code"] == code
        assert int(response.headers["Retry-After"]) > 0


def test_the_staff_pages_calls_use_the_session_and_its_csrf_token(browser_of):
    browser = signed_in(browser_of, "sam", branch="Leeds")
    orders = browser["orders"]
    created = orders.post("/v1/products", json={"name": "Mocha", "size": None, "flavour": None, "price": "2.70"},
                          headers=ADMIN).get_json()
    body = {"branch": "Leeds", "customer_name": "Page Customer", "customer_address": "1 Road",
            "customer_phone": "07700 900555", "payment_method": "CASH", "courier_id": None,
            "items": [{"product_id": created["id"], "quantity": 1}]}
    assert orders.get("/v1/products").status_code == 200
    refused = orders.post("/v1/orders", json=body)
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "csrf_failed"
    forged = orders.post("/v1/orders", json=body, headers={"X-CSRFToken": "forged"})
    assert forged.status_code == 400
    meta = orders.get("/app").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
    taken = orders.post("/v1/orders", json=body, headers={"X-CSRFToken": meta})
    assert taken.status_code == 201, taken.get_json()
    assert taken.get_json()["created_by"] == "sam"
    # A cookie without its CSRF cookie (another site cannot send ours along) is refused as well.
    orders.delete_cookie(CSRF_COOKIE)
    assert orders.post("/v1/orders", json=body, headers={"X-CSRFToken": meta}).status_code == 400


def test_ingest_takes_the_session_for_reads_and_with_the_csrf_token_for_changes(browser_of, apps):
    """Ready for the branch portal: the session of a manager reads and posts that branch's files."""
    ingest_app = apps["ingest"]
    ingest_app.add_url_rule("/test-only/csrf", "test_only_csrf", generate_csrf)    # what a portal page renders
    browser = signed_in(browser_of, "mo", role="manager", branch="Leeds")
    ingest = browser["ingest"]
    csv = b"25/08/2021 09:00,Leeds,Ann Example,Large Latte - 2.45,2.45,CASH,\n"

    def post(headers=None, data=None):
        return ingest.post("/v1/uploads", data=data or {"file": (io.BytesIO(csv), "leeds_25-08-2021.csv")},
                           headers=headers or {}, content_type="multipart/form-data")

    assert ingest.get("/v1/uploads").get_json()["total"] == 0
    refused = post()
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "csrf_failed"
    token = ingest.get("/test-only/csrf").get_data(as_text=True)
    posted = post({"X-CSRFToken": token})
    assert posted.status_code == 202, posted.get_json()
    upload = posted.get_json()
    assert upload["branch"] == "Leeds"
    listed = ingest.get("/v1/uploads").get_json()
    assert [u["id"] for u in listed["items"]] == [upload["id"]]
    retract = ingest.delete(f"/v1/uploads/{upload['id']}", json={"reason": "posted twice"})
    assert retract.status_code == 400 and retract.get_json()["error"]["code"] == "csrf_failed"
    assert ingest.get(f"/v1/uploads/{upload['id']}").get_json()["status"] == "queued"


def test_a_manager_is_tied_to_a_branch_everywhere(apps, clean):
    from click.testing import CliRunner

    from services.cli import main as cli

    admin = apps["orders"].test_client()
    missing = admin.post("/v1/users", json={"username": "mo", "password": PASSWORD, "role": "manager"},
                         headers=ADMIN)
    assert missing.status_code == 422 and missing.get_json()["error"]["message"].endswith("branch")
    result = CliRunner().invoke(cli, ["user", "add", "mo", "--role", "manager"], input=f"{PASSWORD}\n")
    assert result.exit_code != 0 and "a manager runs one branch" in result.output
    staff = admin.post("/v1/users", json={"username": "sol", "password": PASSWORD, "role": "staff"}, headers=ADMIN)
    promoted = admin.patch(f"/v1/users/{staff.get_json()['id']}", json={"role": "manager"}, headers=ADMIN)
    assert promoted.status_code == 422
    ok = admin.patch(f"/v1/users/{staff.get_json()['id']}", json={"role": "manager", "branch": "Leeds"},
                     headers=ADMIN)
    assert ok.status_code == 200 and ok.get_json()["role"] == "manager" and ok.get_json()["branch"] == "Leeds"
    with pytest.raises(IntegrityError), clean.begin() as conn:      # whoever writes the row (orders 0007)
        conn.execute(text("UPDATE orders.app_user SET branch = NULL, branch_key = NULL WHERE username = 'sol'"))
    add_user("mo", role="manager", branch="leeds")


@pytest.mark.parametrize("value", ["http://127.0.0.1:8002/orders", "ftp://127.0.0.1", "127.0.0.1:8002",
                                   "http://user@127.0.0.1:8002", "http://127.0.0.1:8002/?next=x", "https://"])
def test_a_public_url_is_an_origin_and_nothing_else(settings, value):
    """What safe_next compares with must be scheme://host[:port]; a path or credentials would widen it."""
    from pydantic import ValidationError

    from services.common.settings import Settings

    with pytest.raises(ValidationError, match="CAFEFLOW_ORDERS_URL|orders_public_url|scheme://host"):
        Settings(CAFEFLOW_ORDERS_URL=value)
    assert Settings(CAFEFLOW_ORDERS_URL="HTTPS://Cafeflow.Example.com/").orders_public_url == (
        "https://cafeflow.example.com")
    with pytest.raises(ValidationError, match="SESSION_COOKIE_DOMAIN"):
        Settings(SESSION_COOKIE_DOMAIN="evil.example/path")
