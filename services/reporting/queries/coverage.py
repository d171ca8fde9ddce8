"""Did every branch send its file? The grid is defined once in services/common/coverage.py (ingest's branch
portal shows it too); here the report's filters and what its cache key depends on."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common import coverage as grid
from services.reporting.filters import Filters

# Everything about uploads and branches the answer depends on, beyond the warehouse version: new uploads,
# ones that failed, are retried or still wait, new branches. (queued -> processing shows the same
# 'pending'; a load ends with one fewer waiting.) Index-only scans on upload_status_idx.
_VERSION_AND_UPLOAD_STATE = """
SELECT (SELECT coalesce(max(version), 0) FROM warehouse.version),
       (SELECT coalesce(max(id), 0) FROM ingest.upload),
       (SELECT count(*) FROM ingest.upload WHERE status = 'failed'),
       (SELECT count(*) FROM ingest.upload WHERE status IN ('queued', 'processing')),
       (SELECT count(*) FROM ingest.branch), (SELECT coalesce(max(id), 0) FROM ingest.branch)
"""


def version_and_upload_state(session: Session) -> list[int]:
    """The warehouse version, then the upload and branch state (see above)."""
    return list(session.execute(text(_VERSION_AND_UPLOAD_STATE)).one())


def coverage(session: Session, filters: Filters) -> dict:
    return grid.coverage(session, date_from=filters.date_from, date_to=filters.date_to,
                         branch_keys=None if filters.branch_keys is None else list(filters.branch_keys))
