"""Password hashing with scrypt from the standard library: salted, slow and memory-hard, so a stolen
table cannot be brute-forced cheaply (about 50 ms per guess here; no extra dependency)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache

_N, _R, _P = 2 ** 14, 8, 1
_SCHEME = "scrypt"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join((_SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        computed = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                  dklen=len(_unb64(digest)), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, _unb64(digest))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@cache
def dummy_hash() -> str:
    """A hash of a random password with the real cost parameters: a login that names an unknown or
    deactivated account is checked against it, so every refusal costs the same scrypt run as a wrong
    password and no answer's speed tells which accounts exist or are active. Built once per process (the
    app factory asks for it, so the first such login is not slower either)."""
    return hash_password(secrets.token_hex(8))
