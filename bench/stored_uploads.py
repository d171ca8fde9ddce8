"""Shared by the benchmarks that call the loader in-process: an upload row in `processing` with its raw
bytes stored (encrypted) as ingest would have stored them, without going through HTTP."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.rawstore import RawCipher, chunk_count, store_raw
from services.common.uploads import poster_key


@dataclass(frozen=True)
class StoredUpload:
    upload_id: int
    sha256_hex: str
    chunk_count: int


def store_upload(conn, cipher: RawCipher, raw: bytes, filename: str, mode: str = "append") -> StoredUpload:
    """Commits an upload row claimed for loading (status processing, attempt 1) and its stored bytes, posted
    by the admin in `mode` (append or replace)."""
    sha = hashlib.sha256(raw).hexdigest()
    chunks = chunk_count(len(raw))
    with conn.begin():
        upload_id = conn.execute(text("""
            INSERT INTO ingest.upload (sha256, poster_key, mode, filename, size_bytes, chunk_count, submitted_by,
                                       status, attempts, started_at)
            VALUES (:sha, :poster, :mode, :f, :size, :chunks, 'bench', 'processing', 1, now()) RETURNING id"""),
            # The file name in the poster key: a bench run posts bytes an earlier run posted too
            # (the same corrected day), and each run's upload must be a new one.
            {"sha": sha, "poster": f"{poster_key('admin', mode)} {filename}", "mode": mode, "f": filename,
             "size": len(raw), "chunks": chunks}).scalar()
    with Session(bind=conn) as session:
        store_raw(session, cipher, upload_id=upload_id, sha256_hex=sha, size=len(raw), source=io.BytesIO(raw))
        session.commit()
    return StoredUpload(upload_id, sha, chunks)
