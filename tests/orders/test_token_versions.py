"""A user token ends with what it stands for: a password change, a deactivation (even if undone), a role
or branch change, and a logout end every token issued before, in orders and in reporting alike."""
from __future__ import annotations

import pytest

from tests.orders.conftest import PASSWORD, bearer


@pytest.fixture
def reporting(settings, clean):
    from services.reporting.app import create_app

    return create_app(settings).test_client()


def user_id(api, admin, username: str) -> int:
    users = api.get("/v1/users", headers=admin).get_json()["items"]
    return next(u["id"] for u in users if u["username"] == username)


def works(api, reporting, headers) -> tuple[int, int]:
    return (api.get("/v1/products", headers=headers).status_code,
            reporting.get("/v1/reports/trend", headers=headers).status_code)


@pytest.mark.parametrize("change", [
    {"password": "a brand new password"},
    {"role": "admin"},
    {"branch": "Leeds"},
    {"active": False},
])
def test_a_change_to_the_user_ends_the_old_tokens(api, admin, login, reporting, change):
    headers = login("ann", branch="London Soho")
    assert works(api, reporting, headers) == (200, 200)
    changed = api.patch(f"/v1/users/{user_id(api, admin, 'ann')}", json=change, headers=admin)
    assert changed.status_code == 200, changed.get_json()
    assert works(api, reporting, headers) == (401, 401), change
    if change != {"active": False}:
        password = change.get("password", PASSWORD)
        fresh = api.post("/v1/auth/token", json={"username": "ann", "password": password}).get_json()
        assert works(api, reporting, bearer(fresh["access_token"])) == (200, 200)


def test_a_deactivation_undone_does_not_bring_old_tokens_back(api, admin, login, reporting):
    headers = login("ann")
    ann = user_id(api, admin, "ann")
    assert api.patch(f"/v1/users/{ann}", json={"active": False}, headers=admin).status_code == 200
    assert api.patch(f"/v1/users/{ann}", json={"active": True}, headers=admin).status_code == 200
    assert works(api, reporting, headers) == (401, 401)


def test_an_unchanged_save_keeps_the_tokens(api, admin, login, reporting):
    headers = login("ann", branch="Leeds")
    assert api.patch(f"/v1/users/{user_id(api, admin, 'ann')}", json={"branch": "leeds", "active": True},
                     headers=admin).status_code == 200
    assert works(api, reporting, headers) == (200, 200)


def test_logout_ends_every_token_of_the_user(api, login, reporting):
    first = login("ann")
    second = bearer(api.post("/v1/auth/token", json={"username": "ann", "password": PASSWORD}).get_json()
                    ["access_token"])
    assert api.post("/v1/auth/logout", headers=first).status_code == 204
    assert works(api, reporting, first) == (401, 401)
    assert works(api, reporting, second) == (401, 401)
    assert api.post("/v1/auth/logout", headers=first).status_code == 401


def test_logout_is_not_counted_as_a_login_attempt(api, login, admin, settings):
    login("ann")
    for _ in range(settings.login_max_failures + 1):
        token = api.post("/v1/auth/token", json={"username": "ann", "password": PASSWORD})
        assert token.status_code == 200
        assert api.post("/v1/auth/logout", headers=bearer(token.get_json()["access_token"])).status_code == 204
    response = api.post("/v1/auth/logout", headers=admin)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "not_a_user"


def test_another_sites_form_cannot_log_in_at_the_json_login(api, login):
    """The staff page signs in with a JSON fetch; what another site's form can send (urlencoded, multipart,
    text/plain, no custom headers) is not JSON, so it gets no token, and no CORS header lets a script of
    another origin read an answer."""
    login("ann")
    body = '{"username": "ann", "password": "' + PASSWORD + '"}'
    for kwargs in ({"data": {"username": "ann", "password": PASSWORD}},
                   {"data": body, "content_type": "text/plain"}):
        response = api.post("/v1/auth/token", headers={"Origin": "https://evil.example"}, **kwargs)
        assert response.status_code == 422 and "access_token" not in response.get_data(as_text=True)
        assert "Access-Control-Allow-Origin" not in response.headers
    preflight = api.options("/v1/auth/token", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
