"""Login: `cafeflow user add`, tokens, wrong credentials, and slowing down password guessing."""
from __future__ import annotations

import time

from click.testing import CliRunner
from sqlalchemy import text

from services.cli import main
from services.common.auth import verify_user_token


def test_user_add_reads_the_password_from_stdin_and_stores_a_slow_salted_hash(api, clean, settings):
    result = CliRunner().invoke(main, ["user", "add", "ann", "--role", "admin"], input="s3cret-pass\n")
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["user", "add", "bob", "--role", "staff", "--branch", "leeds"],
                                input="s3cret-pass\n")
    assert result.exit_code == 0, result.output
    with clean.connect() as conn:
        hashes = dict(conn.execute(text("SELECT username, password_hash FROM orders.app_user")).all())
        bob_branch = conn.execute(text("SELECT branch FROM orders.app_user WHERE username = 'bob'")).scalar()
    assert bob_branch == "Leeds"
    assert all(h.startswith("scrypt$16384$") and "s3cret" not in h for h in hashes.values())
    assert hashes["ann"] != hashes["bob"]            # salted: same password, different hashes

    started = time.perf_counter()
    response = api.post("/v1/auth/token", json={"username": "ann", "password": "s3cret-pass"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "bearer" and body["expires_in"] == settings.user_token_ttl_seconds
    assert time.perf_counter() - started > 0.01      # the hash is deliberately slow
    claims = verify_user_token(settings.secret_key.get_secret_value(), body["access_token"],
                               settings.user_token_ttl_seconds)
    assert (claims.username, claims.role) == ("ann", "admin")
    bob = api.post("/v1/auth/token", json={"username": "bob", "password": "s3cret-pass"}).get_json()
    bob_claims = verify_user_token(settings.secret_key.get_secret_value(), bob["access_token"], 60)
    assert (bob_claims.role, bob_claims.branch) == ("staff", "Leeds")


def test_user_add_refuses_short_passwords_unknown_branches_and_duplicates(clean):
    assert CliRunner().invoke(main, ["user", "add", "x", "--role", "staff"], input="short\n").exit_code != 0
    bad_branch = CliRunner().invoke(main, ["user", "add", "x", "--role", "staff", "--branch", "Atlantis"],
                                    input="long-enough\n")
    assert bad_branch.exit_code != 0 and "unknown branch" in bad_branch.output
    assert CliRunner().invoke(main, ["user", "add", "x", "--role", "staff"], input="long-enough\n").exit_code == 0
    again = CliRunner().invoke(main, ["user", "add", "X", "--role", "staff"], input="long-enough\n")
    assert again.exit_code != 0 and "exists" in again.output


def test_wrong_credentials_are_401_and_repeated_failures_are_slowed_down(api, clean, settings):
    CliRunner().invoke(main, ["user", "add", "ann", "--role", "staff"], input="s3cret-pass\n")
    for attempt in range(settings.login_max_failures):
        wrong = api.post("/v1/auth/token", json={"username": "ann" if attempt % 2 else "nobody",
                                                 "password": "guess"})
        assert wrong.status_code == 401
        assert wrong.get_json()["error"]["message"] == "wrong username or password"
    # Now even the right password from this address waits.
    blocked = api.post("/v1/auth/token", json={"username": "ann", "password": "s3cret-pass"})
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= settings.login_failure_window_seconds
    assert blocked.get_json()["error"]["code"] == "too_many_requests"
    # Another address is not affected (ann's own count, 2 of the 5, is below the limit).
    other = api.post("/v1/auth/token", json={"username": "ann", "password": "s3cret-pass"},
                     environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other.status_code == 200


def test_admin_token_works_as_an_admin_bearer(api, admin):
    response = api.post("/v1/products", json={"name": "Cortado", "size": None, "flavour": None, "price": "2.05"},
                        headers=admin)
    assert response.status_code == 201 and response.get_json()["price"] == "2.05"


def test_behind_the_ingress_the_throttle_counts_each_forwarded_client(settings, clean, redis_client):
    """With TRUSTED_PROXIES=1 (the Kubernetes ConfigMap) the client address comes from X-Forwarded-For, so one
    guesser behind the ingress does not lock everyone out; without a proxy the header is ignored. (The colleague
    signs in to another account: ann's own account is throttled after the guesses whatever the address.)"""
    from services.orders.app import create_app

    CliRunner().invoke(main, ["user", "add", "ann", "--role", "staff"], input="s3cret-pass\n")
    CliRunner().invoke(main, ["user", "add", "bob", "--role", "staff"], input="s3cret-pass\n")
    for trusted, other_client_status in ((1, 200), (0, 429)):
        redis_client.flushdb()
        api = create_app(settings.model_copy(update={"trusted_proxies": trusted})).test_client()
        ingress = {"REMOTE_ADDR": "10.0.0.2"}
        for _ in range(settings.login_max_failures):
            guess = api.post("/v1/auth/token", json={"username": "ann", "password": "guess"},
                             headers={"X-Forwarded-For": "203.0.113.9"}, environ_base=ingress)
            assert guess.status_code == 401
        colleague = api.post("/v1/auth/token", json={"username": "bob", "password": "s3cret-pass"},
                             headers={"X-Forwarded-For": "198.51.100.4"}, environ_base=ingress)
        assert colleague.status_code == other_client_status, trusted


def test_every_refused_login_costs_one_password_hash(api, clean, admin, monkeypatch):
    """No account is revealed by a fast answer: an unknown user, a deactivated user, a wrong password and a
    right one each run scrypt exactly once, with the same cost parameters (counted, not timed)."""
    import hashlib

    CliRunner().invoke(main, ["user", "add", "ann", "--role", "staff"], input="s3cret-pass\n")
    CliRunner().invoke(main, ["user", "add", "gone", "--role", "staff"], input="s3cret-pass\n")
    gone_id = api.get("/v1/users", headers=admin).get_json()["items"][1]["id"]
    assert api.patch(f"/v1/users/{gone_id}", json={"active": False}, headers=admin).status_code == 200

    real_scrypt, calls = hashlib.scrypt, []

    def counting_scrypt(password, **kwargs):
        calls.append((kwargs["n"], kwargs["r"], kwargs["p"]))
        return real_scrypt(password, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting_scrypt)
    cases = {"unknown user": ("nobody-at-all", "guess", 401), "deactivated user": ("gone", "s3cret-pass", 401),
             "deactivated user, wrong password": ("gone", "guess", 401), "wrong password": ("ann", "guess", 401),
             "right password": ("ann", "s3cret-pass", 200)}
    for case, (username, password, status) in cases.items():
        calls.clear()
        response = api.post("/v1/auth/token", json={"username": username, "password": password},
                            environ_base={"REMOTE_ADDR": f"10.0.0.{len(username)}"})
        assert response.status_code == status, case
        assert calls == [(2 ** 14, 8, 1)], case
