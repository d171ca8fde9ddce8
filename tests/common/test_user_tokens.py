"""Signed user tokens: what orders issues, every service can verify, and nothing else passes."""
from __future__ import annotations

import time

from services.common.auth import UserClaims, issue_user_token, verify_user_token

SECRET = "user-token-test-secret-0123456789abcdef"


def test_round_trip_keeps_every_claim():
    claims = UserClaims(user_id=7, username="sam", role="staff", branch="Leeds", scopes=("orders", "reporting"))
    token = issue_user_token(SECRET, claims)
    assert verify_user_token(SECRET, token, max_age_seconds=60) == claims


def test_tampered_wrong_secret_and_foreign_tokens_are_refused():
    token = issue_user_token(SECRET, UserClaims(user_id=1, username="ann", role="admin"))
    assert verify_user_token("another-secret-0123456789abcdef012345", token, 60) is None
    payload, _, signature = token.rpartition(".")
    assert verify_user_token(SECRET, payload + "." + signature[::-1], 60) is None
    assert verify_user_token(SECRET, "cfb_" + token, 60) is None       # a branch-token-looking string
    assert verify_user_token(SECRET, "", 60) is None


def test_expired_token_is_refused():
    token = issue_user_token(SECRET, UserClaims(user_id=1, username="ann", role="admin"))
    time.sleep(1.1)
    assert verify_user_token(SECRET, token, max_age_seconds=0) is None
