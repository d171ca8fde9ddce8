"""Task names cross services: ingest, orders and the admin CLI send them by name, the transform worker registers
them. Every name lives in services/common/task_names.py; these tests fail when a sender uses a name the worker
does not register (a message nobody would ever consume) or spells one out instead of importing it."""
from __future__ import annotations

import ast
import io
import json
import subprocess
import sys

from services.common import task_names
from services.common.queue import producer
from tests.support import ADMIN_TOKEN, ROOT

SENDERS = [ROOT / "services" / "ingest", ROOT / "services" / "orders", ROOT / "services" / "admin_commands.py"]


def worker_registered_names() -> set[str]:
    """The names a worker process registers, built exactly as `cafeflow worker` builds its app, in a fresh
    interpreter (this test process has imported the task modules already, which would hide a missing include)."""
    program = ("import json; from services.transform.celery_app import create_celery; app = create_celery(); "
               "app.loader.import_default_modules(); print(json.dumps(sorted(app.tasks)))")
    out = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def python_files(paths):
    for path in paths:
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def task_name_constants_used(paths) -> set[str]:
    """The task_names.X a module tree refers to: what it can send."""
    used = set()
    for path in python_files(paths):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "task_names":
                used.add(getattr(task_names, node.attr))
    return used


def test_the_worker_registers_every_task_name_and_beat_schedules_only_those():
    registered = worker_registered_names()
    assert set(task_names.ALL) <= registered
    from services.transform.celery_app import create_celery

    scheduled = {entry["task"] for entry in create_celery().conf.beat_schedule.values()}
    assert scheduled <= set(task_names.ALL)


def test_ingest_orders_and_the_cli_send_only_names_the_worker_registers():
    sent = task_name_constants_used(SENDERS)
    assert {task_names.PROCESS_UPLOAD, task_names.RETRACT_UPLOAD, task_names.LOAD_LIVE_ORDER} <= sent
    assert sent <= worker_registered_names()


def test_no_task_name_is_spelled_out_outside_task_names():
    spelled = []
    for path in python_files([ROOT / "services"]):
        if path.name == "task_names.py" or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and node.value in task_names.ALL:
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert not spelled


def test_messages_ingest_and_orders_put_on_the_queue_name_registered_tasks(client, redis_client, settings):
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    posted = client.post("/v1/uploads", data={"file": (io.BytesIO(
        b"01/03/2024 09:00,Leeds,Ann,\"Regular Latte - 2.45\",2.45,CASH,\n"), "day.csv")}, headers=headers)
    assert posted.status_code == 202, posted.get_json()
    retracted = client.delete(f"/v1/uploads/{posted.get_json()['id']}", json={"reason": "wrong file"},
                              headers=headers)
    assert retracted.status_code == 202, retracted.get_json()
    from services.orders.handoff import send_outbox

    assert send_outbox(producer(settings), settings, 1)
    sent = [json.loads(m)["headers"]["task"] for m in redis_client.lrange(settings.transform_queue, 0, -1)]
    assert sorted(sent) == sorted([task_names.PROCESS_UPLOAD, task_names.RETRACT_UPLOAD, task_names.LOAD_LIVE_ORDER])
    assert set(sent) <= worker_registered_names()
