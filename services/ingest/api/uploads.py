"""/v1/uploads: branch files in, one Celery job per new file, status and rejections out."""
from __future__ import annotations

import hashlib
import logging
import os
from typing import BinaryIO

from flask import current_app, request, url_for
from flask_smorest import Blueprint
from sqlalchemy import any_, func, literal, or_, select, text

from services.common import task_names, upload_states
from services.common.errors import ApiError
from services.common.logging import upload_id_var
from services.common.naming import branch_key
from services.common.metrics import UPLOAD_BYTES, UPLOADS_RECEIVED
from services.common.rawstore import RawCipher, chunk_count, store_raw
from services.common.uploads import Branch, Upload, UploadRejection, poster_key, upload_outcome, upload_summary
from services.ingest.auth import Caller, authenticate
from services.ingest.schemas import (PageArgs, RejectionPage, UploadCreateArgs, UploadListArgs, UploadPage,
                                    UploadPublic)

bp = Blueprint("uploads", __name__, url_prefix="/v1/uploads", description="Branch till files")
log = logging.getLogger(__name__)

SNIFF_BYTES = 64 * 1024
READ_BYTES = 1024 * 1024
_BINARY_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"BZh", b"7z\xbc\xaf",
                 b"\xd0\xcf\x11\xe0")
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 13))


def _ctx():
    return (current_app.extensions["cafeflow.db"], current_app.extensions["cafeflow.settings"],
            current_app.extensions["cafeflow.celery"])


def _public(upload: Upload, branch_name: str | None) -> dict:
    counts = (upload.status, upload.rows_loaded, upload.rows_rejected, upload.rows_duplicate)
    return {
        "id": upload.id, "status": upload.status, "outcome": upload_outcome(*counts),
        "summary": upload_summary(*counts, upload.error), "sha256": upload.sha256, "filename": upload.filename,
        "size_bytes": upload.size_bytes, "branch": branch_name, "dialect": upload.dialect,
        "mode": upload.mode, "rows_loaded": upload.rows_loaded, "rows_rejected": upload.rows_rejected,
        "rows_duplicate": upload.rows_duplicate, "rows_retracted": upload.rows_retracted,
        "retraction": None if upload.retract_requested_at is None else {
            "requested_at": upload.retract_requested_at, "requested_by": upload.retract_requested_by,
            "reason": upload.retract_reason, "retracted_at": upload.retracted_at},
        "error": upload.error, "extra_fields": upload.extra_fields,
        "file_branches": upload.file_branch_keys,
        "attempts": upload.attempts, "raw_retained": upload.raw_purged_at is None,
        "created_at": upload.created_at, "finished_at": upload.finished_at,
        "status_url": url_for("uploads.get_upload", upload_id=upload.id),
        "rejections_url": url_for("uploads.list_rejections", upload_id=upload.id),
    }


def _digest_and_sniff(stream: BinaryIO, limit: int) -> tuple[str, int, bytes]:
    sha, size, head = hashlib.sha256(), 0, b""
    while chunk := stream.read(READ_BYTES):
        if len(head) < SNIFF_BYTES:
            head += chunk[:SNIFF_BYTES - len(head)]
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"the file is larger than UPLOAD_MAX_BYTES ({limit} bytes)")
        sha.update(chunk)
    stream.seek(0)
    return sha.hexdigest(), size, head


def _refuse_non_text(head: bytes) -> None:
    """415 for anything that is not a CSV or JSON text file. A stray NUL is not binary data: the control
    characters are counted (UTF-16 without a BOM has one every other byte), and the line holding a NUL is
    rejected on its own when the file is loaded."""
    if head.startswith(_BINARY_MAGIC):
        raise ApiError(415, "unsupported_media_type", "the file is binary; send the till's CSV or JSON export")
    sample = head[:-4] if len(head) == SNIFF_BYTES else head   # may end inside a UTF-8 character
    try:
        decoded = sample.decode("utf-8-sig")
    except UnicodeDecodeError:
        decoded = sample.decode("cp1252", errors="replace")
    controls = len(sample) - len(sample.translate(None, _CONTROL))     # one pass, not one per character
    if controls > max(2, len(sample) // 100) or decoded.count("\ufffd") > max(2, len(decoded) // 100):
        raise ApiError(415, "unsupported_media_type", "the file is not text; send the till's CSV or JSON export")
    first = _first_line(decoded)
    if not (first.startswith(("[", "{")) or "," in first):
        raise ApiError(415, "unsupported_media_type",
                       "the file is neither CSV (comma-separated lines) nor JSON; send the till's export")


def _first_line(text: str) -> str:
    """The first non-blank line, stripped (as `splitlines()` would find it), without splitting the
    whole 64 KiB sample on every request."""
    rest = text.lstrip()
    window = 256
    while True:
        lines = rest[:window].splitlines()
        if len(lines) > 1 or window >= len(rest):
            return lines[0].strip() if lines else ""
        window *= 4


def _existing(session, sha256_hex: str, poster_key: str):
    return session.execute(
        select(Upload, Branch.name).join(Branch, Branch.id == Upload.branch_id, isouter=True)
        .where(Upload.sha256 == sha256_hex, Upload.poster_key == poster_key)).first()


def _poster_key(caller: Caller, mode: str) -> str:
    return poster_key("admin" if caller.is_admin else f"branch:{caller.branch_id}", mode)


def _printable(value: str | None, limit: int) -> str | None:
    """Header-supplied names and types, without control characters (NUL would fail the insert)."""
    if value is None:
        return None
    return "".join(c for c in value if c.isprintable())[:limit] or None


def _the_one_file():
    """The request's one file, in the field 'file'. Anything else in the body is refused rather than
    dropped: a second file would not be loaded, and a field such as `mode` would be silently ignored."""
    files = [(name, part) for name, parts in request.files.lists() for part in parts]
    if len(files) > 1:
        raise ApiError(422, "one_file_per_request", "post one file per request, in the multipart field 'file'",
                       {"file": [f"{len(files)} files were sent; post each file in its own request"]})
    if request.form:
        names = sorted({_printable(name, 100) or "?" for name in request.form})[:20]
        if names == ["file"]:
            raise ApiError(422, "validation_error", "the multipart field 'file' holds text, not a file",
                           {"file": ["send a file (a part with a filename), not text"]})
        raise ApiError(422, "unexpected_field", "the request has fields other than 'file'; options such as "
                       "`mode` are query parameters", {name: ["unexpected field"] for name in names})
    if not files or files[0][0] != "file":
        raise ApiError(422, "validation_error", "the multipart field 'file' is missing",
                       {"file": ["Missing data for required field."]})
    return files[0][1]


@bp.route("", methods=["POST"])
@bp.doc(operationId="uploads-create", summary="Post a branch file",
        requestBody={"required": True, "content": {"multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "additionalProperties": False,
                       "description": "exactly one part, the file: a second file or any other field is 422",
                       "properties": {"file": {"type": "string", "format": "binary"}}}}}},
        security=[{"bearer": []}])
@bp.arguments(UploadCreateArgs, location="query")
@bp.response(202, UploadPublic, description="Stored and queued; poll status_url")
@bp.alt_response(200, schema=UploadPublic, description="The same bytes were posted before: the existing upload")
def create_upload(args):
    db, settings, celery = _ctx()
    mode = args["mode"]
    with db.session() as session:
        caller = authenticate(session, settings)
        if not request.mimetype.startswith("multipart/"):
            raise ApiError(415, "unsupported_media_type", "post the file as multipart/form-data in the field 'file'")
        upload_file = _the_one_file()
        sha256_hex, size, head = _digest_and_sniff(upload_file.stream, settings.upload_max_bytes)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ApiError(415, "unsupported_media_type", "the file is UTF-16 text; export it as UTF-8 (or "
                                                          "Windows-1252) CSV")
        if size == 0 or not head.strip(b" \t\r\n\xef\xbb\xbf"):
            raise ApiError(422, "empty_file", "the file is empty", {"file": ["empty"]})
        _refuse_non_text(head)

        filename = _printable(os.path.basename(upload_file.filename or ""), 255) or "upload"
        poster = _poster_key(caller, mode)
        chunks = chunk_count(size)
        created = session.execute(text("""
            INSERT INTO ingest.upload (sha256, poster_key, mode, filename, content_type, size_bytes, chunk_count,
                                       branch_id, expected_branch_key, submitted_by, status, enqueued_at)
            VALUES (:sha, :poster, :mode, :filename, :content_type, :size, :chunks, :branch_id, :branch_key, :by,
:status, now())
            ON CONFLICT (sha256, poster_key) DO NOTHING RETURNING *"""), {
            "sha": sha256_hex, "poster": poster, "mode": mode, "filename": filename,
            "content_type": _printable(upload_file.mimetype, 100), "size": size, "chunks": chunks,
            "branch_id": caller.branch_id, "branch_key": caller.branch_key, "by": caller.name,
            "status": upload_states.INITIAL}).first()
        if created is None:
            # This poster sent these bytes before, or an identical post committed while we were reading.
            session.rollback()
            return _repeat(session, settings, celery, caller, sha256_hex, mode, size, upload_file.stream)
        upload_id_var.set(created.id)
        store_raw(session, RawCipher(settings.secret_key.get_secret_value()), upload_id=created.id,
                  sha256_hex=sha256_hex, size=size, source=upload_file.stream)
        session.commit()
        UPLOADS_RECEIVED.labels("new").inc()
        UPLOAD_BYTES.inc(size)
        _enqueue(celery, settings, created.id)
        log.info("upload stored", extra={"size_bytes": size, "chunks": chunks, "submitted_by": caller.name})
        response = _public(created, caller.branch_name)
    return response, 202, {"Location": response["status_url"]}


def _repeat(session, settings, celery, caller: Caller, sha256_hex: str, mode: str, size: int, stream):
    """A repeat answers 200 with the existing upload; a repeat of a failed one retries it (202) from
    the bytes just posted, which replace whatever was kept (purged, or the cause of the failure)."""
    found = _existing(session, sha256_hex, _poster_key(caller, mode))
    if found is None:
        # The earlier upload was retracted between our insert and this read: the poster may post again.
        raise ApiError(409, "conflict", "these bytes were just retracted; post the file again to load it again")
    upload, branch_name = found
    if upload.status != upload_states.FAILED:
        UPLOADS_RECEIVED.labels("duplicate").inc()
        return _public(upload, branch_name), 200
    locked = session.execute(text("SELECT id FROM ingest.upload WHERE id = :id AND status = :failed FOR UPDATE"),
                             {"id": upload.id, "failed": upload_states.FAILED}).first()
    if locked is None:           # someone else retried it just now
        session.rollback()
        return _public(*_existing(session, sha256_hex, _poster_key(caller, mode))), 200
    session.execute(text("DELETE FROM ingest.upload_chunk WHERE upload_id = :id"), {"id": upload.id})
    store_raw(session, RawCipher(settings.secret_key.get_secret_value()), upload_id=upload.id,
              sha256_hex=sha256_hex, size=size, source=stream)
    upload_states.move(session, upload.id, upload_states.QUEUED, assign="""
        error = NULL, raw_purged_at = NULL, finished_at = NULL, attempts = 0, enqueued_at = now()""")
    session.commit()
    UPLOADS_RECEIVED.labels("retry").inc()
    _enqueue(celery, settings, upload.id)
    log.info("failed upload posted again: queued for another try", extra={"upload_id": upload.id})
    session.expire_all()      # the session still holds the upload as it was read before the update
    response = _public(*_existing(session, sha256_hex, _poster_key(caller, mode)))
    return response, 202, {"Location": response["status_url"]}


def _enqueue(celery, settings, upload_id: int) -> None:
    _send(celery, settings, task_names.PROCESS_UPLOAD, upload_id)


def _send(celery, settings, task: str, upload_id: int) -> None:
    try:
        celery.send_task(task, args=[upload_id], queue=settings.transform_queue)
    except Exception as exc:  # noqa: BLE001 - the request is stored; the sweeper sends it later
        log.warning("broker unavailable; the sweeper will send the task", extra={"error": type(exc).__name__,
                                                                                  "task": task})


def _visible_upload(session, caller: Caller, upload_id: int):
    found = session.execute(
        select(Upload, Branch.name).join(Branch, Branch.id == Upload.branch_id, isouter=True)
        .where(Upload.id == upload_id)).first()
    if found is None or (not caller.is_admin and found[0].branch_id != caller.branch_id):
        raise ApiError(404, "not_found", f"no upload {upload_id} visible to this token")
    return found


@bp.route("/<int:upload_id>", methods=["GET"])
@bp.doc(operationId="uploads-get", summary="An upload's status and counts", security=[{"bearer": []}])
@bp.response(200, UploadPublic)
def get_upload(upload_id: int):
    db, settings, _ = _ctx()
    with db.session() as session:
        caller = authenticate(session, settings)
        return _public(*_visible_upload(session, caller, upload_id))


@bp.route("/<int:upload_id>", methods=["DELETE"])
@bp.doc(operationId="uploads-retract", summary="Retract an upload: its sales leave the warehouse",
        description=("The upload's sales leave the warehouse, except those another standing upload also "
                     "contained. Answered at once (202); the upload becomes `retracted` when the transform has "
                     "done it (an upload still loading is retracted right after its load). Repeating is a "
                     "no-op. The admin, or the branch that posted it. The reason is required (JSON body "
                     "`{\"reason\"}` or `?reason=`)."),
        security=[{"bearer": []}])
@bp.response(202, UploadPublic, description="Retraction requested (or already requested); poll status_url")
@bp.alt_response(200, schema=UploadPublic, description="Already retracted: nothing to do")
def retract_upload(upload_id: int):
    db, settings, celery = _ctx()
    reason = _retract_reason()
    with db.session() as session:
        caller = authenticate(session, settings)
        upload, branch_name = _visible_upload(session, caller, upload_id)
        if upload.status == upload_states.RETRACTED:
            return _public(upload, branch_name), 200
        session.execute(text("""
            UPDATE ingest.upload SET retract_requested_at = now(), retract_requested_by = :by, retract_reason = :reason,
                   updated_at = now()
            WHERE id = :id AND retract_requested_at IS NULL"""), {"id": upload_id, "by": caller.name, "reason": reason})
        session.commit()
        _send(celery, settings, task_names.RETRACT_UPLOAD, upload_id)
        log.info("retraction requested", extra={"upload_id": upload_id, "requested_by": caller.name})
        session.expire_all()
        response = _public(*_visible_upload(session, caller, upload_id))
    return response, 202, {"Location": response["status_url"]}


def _retract_reason() -> str:
    """The reason, from a JSON body or the query string; printable, 1-500 characters."""
    body = request.get_json(silent=True) if request.mimetype == "application/json" else None
    reason = body.get("reason") if isinstance(body, dict) else request.args.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(422, "validation_error", "say why the upload is retracted: {\"reason\": \"...\"}",
                       {"reason": ["Missing data for required field."]})
    reason = reason.strip()
    if len(reason) > 500 or not reason.isprintable():
        raise ApiError(422, "validation_error", "the reason must be 1-500 printable characters",
                       {"reason": ["Length must be between 1 and 500."]})
    return reason


@bp.route("/<int:upload_id>/rejections", methods=["GET"])
@bp.doc(operationId="uploads-rejections", summary="Rejected rows with reasons (personal data masked)",
        security=[{"bearer": []}])
@bp.arguments(PageArgs, location="query")
@bp.response(200, RejectionPage)
def list_rejections(args, upload_id: int):
    db, settings, _ = _ctx()
    with db.session() as session:
        caller = authenticate(session, settings)
        _visible_upload(session, caller, upload_id)
        page, size = args["page"], args["page_size"]
        where = UploadRejection.upload_id == upload_id
        total = session.execute(select(func.count()).select_from(UploadRejection).where(where)).scalar_one()
        rows = session.execute(select(UploadRejection).where(where).order_by(UploadRejection.line_no)
                               .limit(size).offset((page - 1) * size)).scalars().all()
        return {"items": [{"line_no": r.line_no, "code": r.code, "reason": r.reason, "row": r.masked_row,
                           "rows": r.rows}
                          for r in rows], "page": page, "page_size": size, "total": total}


@bp.route("", methods=["GET"])
@bp.doc(operationId="uploads-list", summary="Uploads, newest first", security=[{"bearer": []}])
@bp.arguments(UploadListArgs, location="query")
@bp.response(200, UploadPage)
def list_uploads(args):
    db, settings, _ = _ctx()
    with db.session() as session:
        caller = authenticate(session, settings)
        query = select(Upload, Branch.name).join(Branch, Branch.id == Upload.branch_id, isouter=True)
        if not caller.is_admin:
            query = query.where(Upload.branch_id == caller.branch_id)
        if args.get("branch"):
            key = branch_key(args["branch"])
            query = query.where(or_(Branch.branch_key == key, literal(key) == any_(Upload.file_branch_keys)))
        if args.get("status"):
            query = query.where(Upload.status == args["status"])
        if args.get("ids"):
            query = query.where(Upload.id.in_(args["ids"]))
        page, size = args["page"], args["page_size"]
        total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = session.execute(query.order_by(Upload.id.desc()).limit(size).offset((page - 1) * size)).all()
        return {"items": [_public(u, b) for u, b in rows], "page": page, "page_size": size, "total": total}

