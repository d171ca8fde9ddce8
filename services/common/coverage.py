"""Did every branch send its file? Per registered branch and UK-local day: whether sales from a file are
in the warehouse for that day (loaded), and otherwise whether a file for that day arrived and what became
of it. An upload belongs to a day by the date in its file name (tills name files `leeds_25-08-2021_...`;
ISO dates work too) and to a branch by the branch token that posted it, or (the admin's uploads) by its rows'
branches or its file name.

Shared by reporting (`/v1/reports/coverage`, every branch) and ingest (`/v1/coverage` and the branch portal: the
signed-in manager's own branch): one definition of "a day is in", read from the tables directly, since no
service imports another."""
from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import text
from sqlalchemy.orm import Session


# Per registered branch, its days in range with file sales as two arrays (day number from `from`, count):
# one row per branch. Days without sales are absent and filled in by the caller, which is cheaper than
# joining every branch to every day and sorting that grid here. The arrays are not sorted (an ORDER BY in
# each array_agg was half this query's time): both come from one aggregate pass over the same rows, so they
# stay aligned, and the caller places each count by its day number.
_BRANCH_DAYS = """
WITH loaded AS (
    SELECT s.branch_id, s.local_date - CAST(:date_from AS date) AS day_no, s.transactions::int AS transactions
    FROM warehouse.rollup_branch_day s
    WHERE s.source = 'file' AND s.local_date BETWEEN :date_from AND :date_to
), per_branch AS (
    SELECT branch_id, array_agg(day_no) AS day_nos, array_agg(transactions) AS transactions
    FROM loaded GROUP BY 1
)
SELECT r.id, r.name, r.branch_key, p.day_nos, p.transactions
FROM ingest.branch r
LEFT JOIN warehouse.dim_branch w ON w.branch_key = r.branch_key
LEFT JOIN per_branch p ON p.branch_id = w.id
{where}
"""
# Reporting's role sees only these upload columns (migration 0002); the date filter runs on the file name, so
# uploads of other days are not fetched. The expressions are ingest migration 0002's index expressions exactly
# (tests/reporting/test_access_and_cache.py checks the plan uses them).
_UPLOADS = """
SELECT id, status, filename, branch_id, expected_branch_key, file_branch_keys
FROM ingest.upload
WHERE substring(filename FROM '\\d{2}-\\d{2}-\\d{4}') = ANY(:dmy)
   OR substring(filename FROM '\\d{4}-\\d{2}-\\d{2}') = ANY(:iso)
"""
_DMY = re.compile(r"(\d{2})-(\d{2})-(\d{4})")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_WORDS = re.compile(r"[^a-z0-9]+")


def _file_day(filename: str) -> dt.date | None:
    try:
        if m := _DMY.search(filename):
            return dt.date(int(m[3]), int(m[2]), int(m[1]))
        if m := _ISO.search(filename):
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None
    return None


def _belongs(upload, branch) -> bool:
    """A branch token's upload belongs to its own branch only: its file name is the poster's to choose, and
    its rows for other branches are rejected, so neither may put it in another branch's cells. The admin's
    uploads (backfills) belong to the branches of their rows, or else to the branch their name starts with."""
    if upload.branch_id is not None or upload.expected_branch_key is not None:
        return upload.branch_id == branch.id or upload.expected_branch_key == branch.branch_key
    if upload.file_branch_keys and branch.branch_key in upload.file_branch_keys:
        return True
    return _WORDS.sub(" ", upload.filename.lower()).startswith(branch.branch_key + " ")


def _status(transactions: int, upload_statuses: list[str]) -> str:
    if transactions:
        return "loaded"
    for status in ("processing", "queued", "failed", "loaded"):
        if status in upload_statuses:
            return {"processing": "pending", "queued": "pending", "failed": "failed", "loaded": "no_sales"}[status]
    return "missing"


def coverage(session: Session, *, date_from: dt.date, date_to: dt.date, branch_keys: list[str] | None) -> dict:
    """A branch x day grid, as columns: `days` once, then per branch one status and one count per day
    (`branch_keys` None: every registered branch). Statuses: loaded (the day has file sales), pending (a file
    for it waits or loads), failed (its file failed), no_sales (its file loaded but added no sale of the day),
    missing (no file). (Objects per cell made a four-week answer for 100 branches 300 KB; a year for 500
    branches would be 20 MB.)"""
    params = {"date_from": date_from, "date_to": date_to, "branch_keys": list(branch_keys or ())}
    where = "WHERE r.branch_key = ANY(:branch_keys)" if branch_keys is not None else ""
    branches = session.execute(text(_BRANCH_DAYS.format(where=where)), params).all()
    days = [date_from + dt.timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    iso_days = [d.isoformat() for d in days]
    uploads = session.execute(text(_UPLOADS), {"dmy": [d.strftime("%d-%m-%Y") for d in days],
                                               "iso": iso_days}).all()
    uploads_by_day_no: dict[int, list] = {}
    for upload in uploads:
        if (day := _file_day(upload.filename)) is not None and date_from <= day <= date_to:
            uploads_by_day_no.setdefault((day - date_from).days, []).append(upload)
    out = []
    for branch in branches:
        transactions = [0] * len(days)
        for day_no, count in zip(branch.day_nos or (), branch.transactions or (), strict=True):
            transactions[day_no] = count
        status = ["loaded" if count else "missing" for count in transactions]
        branch_uploads = {}
        for day_no, candidates in uploads_by_day_no.items():
            mine = [u for u in candidates if _belongs(u, branch)]
            if mine:
                branch_uploads[iso_days[day_no]] = sorted(u.id for u in mine)
                status[day_no] = _status(transactions[day_no], [u.status for u in mine])
        out.append({"branch": branch.name, "missing_last_day": not transactions[-1],
                    "days_missing": transactions.count(0), "status": status, "transactions": transactions,
                    "upload_ids": branch_uploads})
    out.sort(key=lambda b: (not b["missing_last_day"], b["branch"]))
    return {"last_day": date_to.isoformat(), "days": iso_days, "branches": out}
