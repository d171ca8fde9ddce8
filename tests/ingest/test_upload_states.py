"""The upload's states and moves (services/common/upload_states.py): an illegal move is refused and changes
nothing, the legal ones are the only writes of ingest.upload.status anywhere in the code."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.cli import main
from services.common import task_names, upload_states
from services.common.upload_states import (FAILED, LOADED, PROCESSING, QUEUED, RETRACTED, STATUSES, TRANSITIONS,
                                           IllegalUploadMove)
from tests.support import ROOT
from tests.transform.helpers import post

ROW = b'25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'


def status_of(engine, upload_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT status FROM ingest.upload WHERE id = :id"), {"id": upload_id}).scalar()


def force(engine, upload_id: int, status: str) -> None:
    """Puts an upload in a state for the test (what the code itself never does: it moves)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET status = :s WHERE id = :id"), {"s": status, "id": upload_id})


def test_every_state_has_its_moves_and_the_database_knows_exactly_these_states(clean):
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(set(targets) <= set(STATUSES) for targets in TRANSITIONS.values())
    assert TRANSITIONS[RETRACTED] == ()
    with clean.connect() as conn:
        check = conn.execute(text("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                  "WHERE conname = 'upload_status_known'")).scalar()
    assert set(re.findall(r"'(\w+)'", check)) == set(STATUSES)


@pytest.mark.parametrize("current,to", [(current, to) for current in STATUSES for to in STATUSES
                                        if to not in TRANSITIONS[current]])
def test_an_illegal_move_is_refused_and_changes_nothing(client, admin_headers, clean, current, to):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    force(clean, upload_id, current)
    with Session(clean) as session:
        with pytest.raises(IllegalUploadMove, match=f"upload {upload_id} is {current}: it cannot become {to}"):
            upload_states.move(session, upload_id, to, assign="error = 'moved'")
        session.rollback()
    assert status_of(clean, upload_id) == current
    with clean.connect() as conn:
        assert conn.execute(text("SELECT error FROM ingest.upload WHERE id = :id"), {"id": upload_id}).scalar() \
            is None


@pytest.mark.parametrize("current,to", [(current, to) for current in STATUSES for to in TRANSITIONS[current]])
def test_a_legal_move_happens(client, admin_headers, clean, current, to):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    force(clean, upload_id, current)
    with Session(clean) as session:
        upload_states.move(session, upload_id, to)
        session.commit()
    assert status_of(clean, upload_id) == to


def test_moving_an_upload_that_does_not_exist_is_refused(clean):
    with Session(clean) as session, pytest.raises(IllegalUploadMove, match="there is no upload 999"):
        upload_states.move(session, 999, QUEUED)


def test_a_retracted_upload_is_not_loaded_retried_or_failed(client, admin_headers, clean, run_task):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    assert client.delete(f"/v1/uploads/{upload_id}", json={"reason": "wrong day"},
                         headers=admin_headers).status_code == 202
    assert run_task(task_names.RETRACT_UPLOAD, upload_id) == "retracted"
    assert run_task(task_names.PROCESS_UPLOAD, upload_id) == "skipped"
    retried = CliRunner().invoke(main, ["uploads", "retry", str(upload_id)])
    assert retried.exit_code == 1 and "retracted" in retried.output
    with Session(clean) as session:        # what the worker does when a load gives up
        session.execute(upload_states.transition(FAILED, assign="error = 'gave up'"), {"id": upload_id})
        session.commit()
    assert status_of(clean, upload_id) == RETRACTED


def test_a_loaded_upload_is_not_failed_by_a_late_failure(client, admin_headers, clean, run_task):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    assert run_task(task_names.PROCESS_UPLOAD, upload_id) == "loaded"
    with Session(clean) as session:
        assert session.execute(upload_states.transition(FAILED, assign="error = 'late'"),
                               {"id": upload_id}).first() is None
        session.commit()
    assert status_of(clean, upload_id) == LOADED
    assert PROCESSING not in TRANSITIONS[LOADED]


def test_only_upload_states_writes_an_uploads_status():
    """Every UPDATE of ingest.upload that sets status is made by upload_states (migrations aside)."""
    writes = re.compile(r"UPDATE\s+ingest\.upload\b(?:(?!WHERE).)*?\bstatus\s*=", re.S | re.I)
    offenders = []
    for path in (ROOT / "services").rglob("*.py"):
        if path.name == "upload_states.py" or "migrations" in path.parts:
            continue
        source = path.read_text()
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)[:60]!r}" for m in writes.finditer(source)]
        if re.search(r"\bUpload\.status\s*=[^=]|\.status\s*=\s*['\"](queued|processing|loaded|failed|retracted)",
                     source):
            offenders.append(f"{path.relative_to(ROOT)}: ORM assignment of an upload status")
    assert not offenders
