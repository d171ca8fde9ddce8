"""Password guessing is throttled per client address and per account, atomically, and no login of one
account clears another's count (services/orders/throttle.py)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from click.testing import CliRunner

from services.cli import main

PASSWORD = "s3cret-pass"


def add_user(name: str) -> None:
    result = CliRunner().invoke(main, ["user", "add", name, "--role", "staff"], input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output


def login(api, username: str, password: str, address: str = "127.0.0.1"):
    return api.post("/v1/auth/token", json={"username": username, "password": password},
                    environ_base={"REMOTE_ADDR": address})


def test_a_right_login_as_another_account_does_not_reset_the_count(api, clean, settings):
    """The issue's attack: 4 wrong guesses for ann, 1 right login as sam, repeat (20 guesses got 401)."""
    add_user("ann")
    add_user("sam")
    guesses = []
    for round_no in range(4):
        for guess in range(4):
            guesses.append(login(api, "ann", f"guess-{round_no}-{guess}").status_code)
        login(api, "sam", PASSWORD)
    assert guesses.count(401) <= settings.login_max_failures, guesses
    assert set(guesses) == {401, 429}


def test_guessing_one_account_from_many_addresses_is_stopped(api, clean, settings):
    add_user("ann")
    add_user("bob")
    for n in range(settings.login_max_failures):
        assert login(api, "ann", "guess", address=f"203.0.113.{n + 1}").status_code == 401
    fresh = "198.51.100.7"
    refused = login(api, "ANN ", PASSWORD, address=fresh)          # the same account, however it is spelt
    assert refused.status_code == 429, refused.get_json()
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    assert login(api, "bob", PASSWORD, address=fresh).status_code == 200    # other accounts are not


def test_a_right_password_after_the_limit_is_429_until_the_window_ends(settings, clean):
    from services.orders.app import create_app

    add_user("ann")
    api = create_app(settings.model_copy(update={"login_failure_window_seconds": 2})).test_client()
    for _ in range(settings.login_max_failures):
        assert login(api, "ann", "guess").status_code == 401
    blocked = login(api, "ann", PASSWORD)
    assert blocked.status_code == 429
    retry_after = int(blocked.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    assert blocked.get_json()["error"]["details"] == {"retry_after_seconds": retry_after}
    time.sleep(retry_after + 0.2)
    assert login(api, "ann", PASSWORD).status_code == 200


def test_successful_logins_are_not_counted(api, clean, settings):
    add_user("ann")
    for _ in range(settings.login_max_failures * 2):
        assert login(api, "ann", PASSWORD).status_code == 200
    assert login(api, "ann", "guess").status_code == 401


def test_redis_down_logins_work_and_guessing_is_still_bounded(settings, clean):
    """Without Redis the limits are counted in each worker's memory (see the module's docstring)."""
    from services.orders.app import create_app
    from tests.support import free_port

    add_user("ann")
    api = create_app(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})).test_client()
    assert login(api, "ann", PASSWORD).status_code == 200
    for _ in range(settings.login_max_failures):
        assert login(api, "ann", "guess", address="203.0.113.5").status_code == 401
    assert login(api, "ann", "guess", address="203.0.113.5").status_code == 429


def test_forty_parallel_wrong_logins_check_at_most_the_limit(stack, settings):
    """Against real gunicorn (2 workers x 8 threads): the count is taken before the password is checked."""
    add_user("ann")
    url = stack.start_orders(env={"WEB_THREADS": "8"})

    def guess(n: int) -> int:
        return httpx.post(f"{url}/v1/auth/token", json={"username": "ann", "password": f"guess-{n}"},
                          timeout=60).status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(guess, range(40)))
    assert statuses.count(401) <= settings.login_max_failures, statuses
    assert statuses.count(401) + statuses.count(429) == 40, statuses
