"""Keys derived from CAFEFLOW_SECRET_KEY, one per purpose, so no two uses share a key."""
from __future__ import annotations

import hashlib
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



class KeyedHash:
    """keyed_hex for one key, about twice as fast: HMAC's two padded key blocks are hashed once here and
    each message continues from copies of those states (RFC 2104, exactly what hmac.digest computes)."""

    def __init__(self, key: bytes) -> None:
        block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def same_key(self, other: KeyedHash) -> bool:
        return self._inner.digest() == other._inner.digest() and self._outer.digest() == other._outer.digest()

    def digest16(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:16]

    def hex(self, message: str) -> str:
        return self.digest16(message.encode()).hex()
