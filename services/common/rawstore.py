"""Raw branch files at rest: AES-256-GCM in 1 MiB chunks stored in PostgreSQL (`ingest.upload_chunk`).

PostgreSQL is the one durable store every pod already shares, so ingest and the workers need no
shared volume. Each chunk's associated data binds it to its upload's sha256, its position and whether
it is the last one, so chunks cannot be swapped, reordered or truncated without failing decryption.
"""
from __future__ import annotations

import os
from typing import BinaryIO, Iterator

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.crypto import RAW_FILE_KEY, derive_key

CHUNK_BYTES = 1024 * 1024
_NONCE = 12


class RawFileCorrupt(Exception):
    pass


class RawCipher:
    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(derive_key(secret, RAW_FILE_KEY))

    @staticmethod
    def _aad(sha256_hex: str, seq: int, final: bool) -> bytes:
        return f"{sha256_hex}:{seq}:{int(final)}".encode()

    def seal(self, sha256_hex: str, seq: int, final: bool, plain: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plain, self._aad(sha256_hex, seq, final))

    def open(self, sha256_hex: str, seq: int, final: bool, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._aad(sha256_hex, seq, final))
        except Exception as exc:  # InvalidTag: wrong key, tampering, or a missing chunk
            raise RawFileCorrupt(f"stored chunk {seq} failed authentication") from exc


def chunk_count(size: int) -> int:
    return max(1, -(-size // CHUNK_BYTES))


def store_raw(session: Session, cipher: RawCipher, *, upload_id: int, sha256_hex: str, size: int,
              source: BinaryIO) -> int:
    """Encrypts `size` bytes from `source` into chunk rows; returns the chunk count."""
    chunks = chunk_count(size)
    insert = text("INSERT INTO ingest.upload_chunk (upload_id, seq, data) VALUES (:u, :s, :d)")
    for seq in range(chunks):
        plain = source.read(CHUNK_BYTES)
        session.execute(insert, {"u": upload_id, "s": seq,
                                 "d": cipher.seal(sha256_hex, seq, seq == chunks - 1, plain)})
    return chunks


def iter_raw(session: Session, cipher: RawCipher, *, upload_id: int, sha256_hex: str,
             chunk_count: int) -> Iterator[bytes]:
    """Yields the plain bytes chunk by chunk (one chunk in memory at a time)."""
    select = text("SELECT data FROM ingest.upload_chunk WHERE upload_id = :u AND seq = :s")
    for seq in range(chunk_count):
        sealed = session.execute(select, {"u": upload_id, "s": seq}).scalar()
        if sealed is None:
            raise RawFileCorrupt(f"stored chunk {seq} of {chunk_count} is missing")
        yield cipher.open(sha256_hex, seq, seq == chunk_count - 1, bytes(sealed))
