"""The dashboard's sign-in: a server-side session (services/common/sessions.py) whose cookie holds only a
random id, that signing out deletes, that ends with the user's token version, whose forms refuse posts
without their CSRF token, and that answers 503 (not 500) while Redis is down."""
from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import text

from services.cli import main as cli
from services.common.sessions import SESSION_COOKIE, SESSION_KEY_PREFIX
from tests.reporting.conftest import dashboard_login
from tests.support import free_port

PASSWORD = "a long enough password"


def orders_user_token(settings, username: str, role: str = "admin") -> str:
    from services.orders.app import create_app

    result = CliRunner().invoke(cli, ["user", "add", username, "--role", role], input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    response = create_app(settings).test_client().post("/v1/auth/token",
                                                       json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def reporting_token() -> str:
    result = CliRunner().invoke(cli, ["token", "add", "dashboard", "--scope", "reporting"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def session_cookie(client) -> str | None:
    cookie = client.get_cookie(SESSION_COOKIE)
    return cookie.value if cookie else None


def test_an_orders_admin_users_token_never_reaches_the_cookie(reporting_app, settings, redis_client):
    client = reporting_app.test_client()
    token = orders_user_token(settings, "ann")
    response = dashboard_login(client, token)
    assert response.status_code == 302, response.get_data(as_text=True)
    session_id = session_cookie(client)
    cookies = " ".join(c.value for c in client._cookies.values())
    assert session_id and len(session_id) >= 40
    payload, _timestamp, signature = token.removeprefix("cfu.").split(".")
    for part in (token, payload, signature):
        assert part not in cookies
    stored = redis_client.keys(SESSION_KEY_PREFIX + "*")
    assert len(stored) == 1 and session_id.encode() not in stored[0]    # keyed by a digest of the id
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie
    assert client.get("/dashboard").status_code == 200
    assert client.get("/v1/reports/trend").status_code == 200


def test_signing_out_ends_a_copied_cookie(reporting_app, settings, redis_client):
    client = reporting_app.test_client()
    assert dashboard_login(client, reporting_token()).status_code == 302
    copied = session_cookie(client)
    page = client.get("/dashboard").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/dashboard/logout", data={"csrf_token": csrf}).status_code == 302
    assert redis_client.keys(SESSION_KEY_PREFIX + "*") == []
    thief = reporting_app.test_client()
    thief.set_cookie(SESSION_COOKIE, copied)
    assert thief.get("/v1/reports/trend").status_code == 401
    assert thief.get("/dashboard").status_code == 302


def test_a_session_ends_with_a_password_change_or_a_revoked_token(reporting_app, settings, clean):
    user = reporting_app.test_client()
    assert dashboard_login(user, orders_user_token(settings, "bo", role="staff")).status_code == 302
    api = reporting_app.test_client()
    assert dashboard_login(api, reporting_token()).status_code == 302
    assert user.get("/v1/reports/trend").status_code == 200 and api.get("/v1/reports/trend").status_code == 200
    with clean.begin() as conn:
        conn.execute(text("UPDATE orders.app_user SET password_hash = 'scrypt$changed' WHERE username = 'bo'"))
        conn.execute(text("UPDATE ingest.api_token SET revoked_at = now()"))
    assert user.get("/v1/reports/trend").status_code == 401
    assert api.get("/v1/reports/trend").status_code == 401
    assert user.get("/dashboard").status_code == 302


def test_a_login_post_without_the_forms_csrf_token_is_refused(reporting_app):
    """Login CSRF: another site's form would sign the victim's browser in as the attacker."""
    client = reporting_app.test_client()
    response = client.post("/dashboard/login", data={"token": reporting_token()},
                           headers={"Origin": "https://evil.example", "Referer": "https://evil.example/"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf_failed"
    assert session_cookie(client) is None
    forged = client.post("/dashboard/login", data={"token": reporting_token(), "csrf_token": "forged.token"})
    assert forged.status_code == 400 and session_cookie(client) is None


def test_redis_down_the_pages_answer_503_with_retry_after(settings, clean):
    from services.reporting.app import create_app

    working = create_app(settings).test_client()
    assert dashboard_login(working, reporting_token()).status_code == 302
    cookie = session_cookie(working)
    down = create_app(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})).test_client()
    down.set_cookie(SESSION_COOKIE, cookie)
    for response in (down.get("/dashboard"), down.get("/v1/reports/trend"), dashboard_login(down, reporting_token())):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert int(response.headers["Retry-After"]) > 0
        assert response.get_json()["error"]["code"] == "session_store_unavailable"
