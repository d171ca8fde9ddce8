"""Keys derived from CAFEFLOW_SECRET_KEY, one per purpose, so no two uses share a key."""
from __future__ import annotations

import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

RAW_FILE_KEY = b"cafeflow raw-file aes-gcm v1"
CUSTOMER_PSEUDONYM_KEY = b"cafeflow customer pseudonym v1"
SALE_IDENTITY_KEY = b"cafeflow sale identity v1"


def derive_key(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cafeflow", info=purpose).derive(secret.encode())


def keyed_hex(key: bytes, message: str) -> str:
    """A keyed pseudonym (HMAC-SHA256 truncated to 128 bits) as 32 hex digits, which PostgreSQL takes
    as a uuid: stable, and not reversible by a dictionary without the key."""
    return hmac.digest(key, message.encode(), "sha256")[:16].hex()

