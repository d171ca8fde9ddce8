"""`cafeflow upload`: post files and folders to ingest, ride out outages, wait for outcomes.

An outage (ingest or its database or broker down: no connection, 502/503/504, 429) is waited out for up to
--patience seconds (default 5 minutes), honouring the server's Retry-After; the user is told it is waiting and
why. Nothing is posted twice: a repeat of the same bytes returns the existing upload."""
from __future__ import annotations

import random
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.common.upload_states import LOADED, UNFINISHED

SUFFIXES = {".csv", ".json", ".ndjson", ".jsonl", ".txt"}
# Ingest or a dependency is down or busy: ride it out for as long as --patience allows (honouring Retry-After).
OUTAGE_STATUS = {429, 502, 503, 504}
# An internal error may be a blip: a few tries, then it is the file's error.
INTERNAL_ERROR_TRIES = 3
DEFAULT_PATIENCE_SECONDS = 300.0
SAY_EVERY_SECONDS = 10.0


class Patience:
    """How long the client rides out an outage, one clock for the whole run: every thread posting or polling
    sees the same outage, the user is told once (and every SAY_EVERY_SECONDS) that it is waiting and why, and
    the clock restarts when ingest answers again."""

    def __init__(self, seconds: float, say=None) -> None:
        self.seconds = seconds
        self._say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._since: float | None = None
        self._said_at = 0.0

    def wait_after(self, why: str, retry_after: float | None, tries: int) -> bool:
        """Sleeps before the next try and returns True, or returns False when the outage has lasted longer
        than the patience allows (the caller reports `why`)."""
        with self._lock:
            now = time.monotonic()
            if self._since is None:
                self._since = now
            remaining = self.seconds - (now - self._since)
            if remaining <= 0:
                return False
            if now - self._said_at >= SAY_EVERY_SECONDS:
                self._said_at = now
                self._say(f"waiting: {why}; trying again for up to {remaining:.0f} s more (--patience)")
        backoff = min(30.0, 0.5 * 2 ** tries) * (0.5 + random.random())
        time.sleep(max(0.0, min(retry_after if retry_after is not None else backoff, remaining)))
        return True

    def answered(self) -> None:
        with self._lock:
            if self._since is not None:
                self._say(f"ingest answers again after {time.monotonic() - self._since:.0f} s; carrying on")
                self._since, self._said_at = None, 0.0


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delay form; an HTTP date is rare enough to fall back to our backoff)."""
    try:
        return min(60.0, max(0.0, float(response.headers["Retry-After"])))
    except (KeyError, ValueError):
        return None


def _why(response: httpx.Response) -> str:
    try:
        return f"ingest answered {response.status_code}: {response.json()['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"ingest answered {response.status_code}"


class OutOfPatience(Exception):
    """Ingest stayed unreachable or unavailable for longer than --patience."""


@dataclass
class Outcome:
    path: Path
    upload: dict | None = None
    error: str | None = None

    @property
    def clean(self) -> bool:
        return (self.error is None and self.upload is not None and self.upload["status"] == LOADED
                and self.upload["rows_rejected"] == 0)


def collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            files.append(path)
    return files


def _with_retries(action, patience: Patience):
    """The response of `action` once it is no outage, riding outages out for as long as `patience` allows."""
    tries = 0
    while True:
        try:
            response = action()
        except httpx.TransportError as exc:
            why = f"cannot reach ingest ({type(exc).__name__})"
            if not patience.wait_after(why, None, tries):
                raise OutOfPatience(why) from None
        else:
            internal_blip = response.status_code == 500 and tries < INTERNAL_ERROR_TRIES - 1
            if response.status_code not in OUTAGE_STATUS and not internal_blip:
                patience.answered()
                return response
            if not patience.wait_after(_why(response), _retry_after(response), tries):
                return response
        tries += 1


# One random multipart boundary per run instead of one per request: the server compiles a pattern per
# distinct boundary (~1 ms of its CPU per post) and keeps the last few hundred compiled.
BOUNDARY = secrets.token_hex(16)


def post_file(client: httpx.Client, path: Path, patience: Patience, mode: str = "append") -> Outcome:
    def send():
        with path.open("rb") as handle:   # httpx streams the multipart body from the open file
            return client.post("/v1/uploads", params={"mode": mode}, files={"file": (path.name, handle, "text/csv")},
                               headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    try:
        response = _with_retries(send, patience)
    except OutOfPatience as exc:
        return Outcome(path, error=f"gave up after --patience {patience.seconds:g} s: {exc}")
    if response.status_code not in (200, 202):
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        return Outcome(path, error=f"HTTP {response.status_code}: {message}")
    return Outcome(path, upload=response.json())


STATUS_BATCH = 200      # uploads asked about per status request (the API allows up to 500)


def _get(client: httpx.Client, url: str, patience: Patience) -> httpx.Response:
    return _with_retries(lambda: client.get(url), patience)


def _still_running(client: httpx.Client, ids: list[int], patience: Patience) -> bool:
    """Whether any of these uploads is queued or processing, from two counts (no upload bodies)."""
    listed = ",".join(map(str, ids))
    for state in UNFINISHED:
        response = _get(client, f"/v1/uploads?page_size=1&status={state}&ids={listed}", patience)
        if response.status_code != 200 or response.json()["total"]:
            return True
    return False


def wait_for_all(client: httpx.Client, outcomes: list[Outcome], deadline: float, patience: Patience) -> None:
    """Waits until every upload is loaded or failed. Each round asks only whether the oldest
    STATUS_BATCH unfinished uploads are still running (`GET /v1/uploads?ids=&status=`, counts only);
    the uploads' outcomes are fetched once, at the end: a 300-file backfill costs two small requests
    per round, not one per file (those requests competed with the load itself)."""
    pending = {o.upload["id"]: o for o in outcomes if o.upload and o.upload["status"] in UNFINISHED}
    delay = 0.02
    try:
        while pending:
            if time.monotonic() > deadline:
                for outcome in pending.values():
                    outcome.error = f"still {outcome.upload['status']} when the wait timed out"
                return
            time.sleep(delay)
            delay = min(0.1, delay * 1.25)
            if _still_running(client, sorted(pending)[:STATUS_BATCH], patience):
                continue
            # A move between the two counts can hide a running upload: the fetched outcomes decide.
            ids = sorted(pending)[:STATUS_BATCH]
            response = _get(client, f"/v1/uploads?page_size={len(ids)}&ids={','.join(map(str, ids))}", patience)
            if response.status_code != 200:
                continue
            for upload in response.json()["items"]:
                if upload["id"] in pending:
                    pending[upload["id"]].upload = upload
            pending = {i: o for i, o in pending.items() if o.upload["status"] in UNFINISHED}
    except OutOfPatience as exc:
        for outcome in pending.values():
            outcome.error = f"lost contact with ingest for longer than --patience {patience.seconds:g} s: {exc}"


def describe(outcome: Outcome) -> str:
    if outcome.error:
        return f"ERROR   {outcome.path}: {outcome.error}"
    u = outcome.upload or {}
    if u.get("status") == "failed":
        return f"FAILED  {outcome.path}: upload {u['id']}: {u.get('error')}"
    label = "OK     " if u.get("rows_rejected", 0) == 0 else "REJECTS"
    retracted = f", {u['rows_retracted']} earlier sales retracted" if u.get("rows_retracted") else ""
    return (f"{label} {outcome.path}: upload {u['id']} {u['status']}, {u['rows_loaded']} loaded, "
            f"{u['rows_rejected']} rejected, {u['rows_duplicate']} duplicate{retracted}")


REASONS_PER_FILE = 3     # the first rejections of each file, printed under its line (the rest: the API)


def first_rejections(client: httpx.Client, outcome: Outcome, patience: Patience) -> list[str]:
    """The first REASONS_PER_FILE rejections of a file with any, as "line N: reason" (personal data is masked
    by ingest; only the line number and the reason are printed, not the row)."""
    upload = outcome.upload or {}
    if outcome.error or not upload.get("rows_rejected"):
        return []
    try:
        response = _get(client, f"/v1/uploads/{upload['id']}/rejections?page_size={REASONS_PER_FILE}", patience)
    except httpx.TransportError:
        return ["(could not fetch its rejections)"]
    if response.status_code != 200:
        return [f"(could not fetch its rejections: HTTP {response.status_code})"]
    shown = [f"line {r['line_no']}: {_printable(r['reason'])}" for r in response.json()["items"]]
    more = upload["rows_rejected"] - len(shown)
    return shown + ([f"... and {more} more: GET /v1/uploads/{upload['id']}/rejections"] if more > 0 else [])


def _printable(text: str) -> str:
    """A reason may quote a file's text: control characters (a terminal's escape sequences) are shown escaped,
    never sent to the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def summary(outcomes: list[Outcome], waited: bool) -> str:
    """One line for the whole run: files by outcome, rows by outcome."""
    def total(field: str) -> int:
        return sum((o.upload or {}).get(field) or 0 for o in outcomes if not o.error)

    errors = sum(1 for o in outcomes if o.error)
    failed = sum(1 for o in outcomes if not o.error and (o.upload or {}).get("status") == "failed")
    if not waited:
        return f"{len(outcomes)} files: {len(outcomes) - errors} posted, {errors} not posted (not waited for)"
    rejecting = sum(1 for o in outcomes if not o.error and (o.upload or {}).get("rows_rejected"))
    clean = sum(1 for o in outcomes if o.clean)
    return (f"{len(outcomes)} files: {clean} clean, {rejecting} with rejected rows, {failed} failed, "
            f"{errors} not posted; rows: {total('rows_loaded')} loaded, {total('rows_rejected')} rejected, "
            f"{total('rows_duplicate')} duplicate")


def run(paths: list[Path], *, url: str, token: str, wait: bool, timeout: float, parallel: int,
        patience: float = DEFAULT_PATIENCE_SECONDS, mode: str = "append") -> int:
    files = collect(paths)
    if not files:
        print("no files to upload", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    patience_clock = Patience(patience)
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(120.0, connect=10.0)) as client:
        outcomes: list[Outcome] = []
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            for done, outcome in enumerate(pool.map(lambda p: post_file(client, p, patience_clock, mode), files), 1):
                outcomes.append(outcome)
                print(f"posted {done}/{len(files)}", file=sys.stderr, flush=True)
        if wait:
            wait_for_all(client, outcomes, time.monotonic() + timeout, patience_clock)
        reasons = {id(o): first_rejections(client, o, patience_clock) for o in outcomes} if wait else {}
    for outcome in outcomes:
        print(describe(outcome))
        for reason in reasons.get(id(outcome), []):
            print(f"          {reason}")
    print(summary(outcomes, wait))
    if any(o.error for o in outcomes):
        return 2
    return 0 if all(o.clean for o in outcomes) or not wait else 1
