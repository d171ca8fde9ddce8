"""Leases on uploads being loaded (table `ingest.upload_lease`, ingest migration 0005).

The worker that claims an upload takes a lease in the claim's transaction, a thread renews it every quarter of
UPLOAD_LEASE_SECONDS while the load runs, and the load's own transaction deletes it when the upload is
finished. A lease that runs out means its holder stopped (killed, out of memory, its machine gone): beat's
sweeper (services/transform/sweeper.py) re-queues the upload and another worker claims it. The holder is the
Celery task id, so a retry of the same task (after a transient error) may claim its upload again at once, while
another delivery of the same upload waits until the lease has run out.

A lease is the fast signal, not the guard of exactly-once: the claim also skips an upload whose row lock a
loader holds, the load runs in one transaction, and the warehouse's natural keys and claims
(services/transform/load.py) refuse a sale twice.
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# An SQL condition on an upload `u`: nobody else holds a live lease on it (no lease, a lapsed one, or ours).
FREE_FOR_HOLDER = """NOT EXISTS (SELECT FROM ingest.upload_lease l
                                 WHERE l.upload_id = u.id AND l.expires_at > now() AND l.holder <> :holder)"""
# ... and: nobody holds a live lease on it at all.
LAPSED = "NOT EXISTS (SELECT FROM ingest.upload_lease l WHERE l.upload_id = u.id AND l.expires_at > now())"

_TAKE = text("""
INSERT INTO ingest.upload_lease (upload_id, holder, expires_at)
SELECT id, :holder, now() + make_interval(secs => :seconds) FROM unnest(CAST(:ids AS bigint[])) AS ids(id)
ON CONFLICT (upload_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
""")
_RENEW = text("""
UPDATE ingest.upload_lease SET expires_at = now() + make_interval(secs => :seconds)
WHERE upload_id = ANY(:ids) AND holder = :holder
""")
_RELEASE = text("DELETE FROM ingest.upload_lease WHERE upload_id = ANY(:ids)")


def take(session: Session, upload_ids: list[int], *, holder: str, seconds: float) -> None:
    """Inside the claim's transaction."""
    if upload_ids:
        session.execute(_TAKE, {"ids": list(upload_ids), "holder": holder, "seconds": seconds})


def release(session: Session, upload_ids: list[int]) -> None:
    """Inside the transaction that finishes (or re-queues) the uploads."""
    if upload_ids:
        session.execute(_RELEASE, {"ids": list(upload_ids)})


class Renewal:
    """Renews the holder's leases from a thread of its own until the block ends: the load's thread is busy in
    one long transaction. A renewal that fails (the database down) is logged and tried again at the next beat;
    the load itself fails then too."""

    def __init__(self, engine: Engine, upload_ids: list[int], *, holder: str, seconds: float) -> None:
        self.engine, self.upload_ids, self.holder, self.seconds = engine, list(upload_ids), holder, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upload-lease-renewal", daemon=True)

    def __enter__(self) -> "Renewal":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.seconds)

    def renew(self) -> int:
        with self.engine.begin() as conn:
            return conn.execute(_RENEW, {"ids": self.upload_ids, "holder": self.holder,
                                         "seconds": self.seconds}).rowcount

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - logged; the next beat tries again, the load decides
                log.warning("could not renew the upload lease", extra={"error": type(exc).__name__})
