"""Must-show 1-3: the 65 real branch files over HTTP, exactly once, with no personal data anywhere."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text

from tests.support import ADMIN_TOKEN, CLI, REAL_FILES, Stack, free_port, reset_state, wait_until
from tests.realdata import real_figures

pytestmark = pytest.mark.e2e
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def loaded(engine, redis_client, tmp_path_factory):
    reset_state(engine, redis_client)
    stack = Stack(tmp_path_factory.mktemp("real-files"))
    try:
        url = stack.start_ingest()
        metrics_port = free_port()
        stack.start_worker(concurrency=2, env={"WORKER_METRICS_PORT": str(metrics_port)})
        stack.worker_metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        result = subprocess.run(CLI + ["upload", str(REAL_FILES), "--url", url, "--token", ADMIN_TOKEN,
                                       "--timeout", "300"], capture_output=True, text=True, timeout=400)
        responses = [result.stdout, result.stderr]
        yield stack, url, result, responses
    finally:
        stack.stop()


def warehouse_figures(engine):
    with engine.connect() as conn:
        return conn.execute(text("""
            SELECT (SELECT count(*) FROM warehouse.fact_transaction),
                   (SELECT sum(quantity) FROM warehouse.fact_transaction_item),
                   (SELECT sum(total) FROM warehouse.fact_transaction)""")).one()


def test_all_real_files_load_exactly(loaded, engine):
    _stack, _url, result, _ = loaded
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("OK ") == 65
    assert result.stdout.splitlines()[-1] == ("65 files: 65 clean, 0 with rejected rows, 0 failed, 0 not posted; "
                                              "rows: 19448 loaded, 0 rejected, 0 duplicate")
    expected = real_figures()
    transactions, items, revenue = warehouse_figures(engine)
    assert (transactions, items, revenue) == (19_448, 53_712, Decimal("119138.75"))
    assert (expected.transactions, expected.items, expected.revenue) == (transactions, items, revenue)
    with engine.connect() as conn:
        per_branch = dict(conn.execute(text("""
            SELECT b.name, count(*) FROM warehouse.fact_transaction f
            JOIN warehouse.dim_branch b ON b.id = f.branch_id GROUP BY b.name""")).all())
        revenue_per_branch = dict(conn.execute(text("""
            SELECT b.name, sum(f.total) FROM warehouse.fact_transaction f
            JOIN warehouse.dim_branch b ON b.id = f.branch_id GROUP BY b.name""")).all())
        statuses = conn.execute(text("SELECT status, count(*), sum(rows_loaded), sum(rows_rejected), "
                                     "sum(rows_duplicate) FROM ingest.upload GROUP BY status")).all()
    assert per_branch == dict(expected.per_branch)
    assert revenue_per_branch == expected.revenue_per_branch
    assert statuses == [("loaded", 65, 19_448, 0, 0)]


def test_rollups_equal_the_facts(loaded, engine):
    with engine.connect() as conn:
        rollup = conn.execute(text(
            "SELECT sum(transactions), sum(items), sum(revenue) FROM warehouse.rollup_sales_hour")).one()
        products = conn.execute(text(
            "SELECT sum(quantity), sum(revenue) FROM warehouse.rollup_product_hour")).one()
        by_hour = conn.execute(text("""
            SELECT count(*) FROM (
              SELECT (occurred_at AT TIME ZONE 'Europe/London')::date d,
                     extract(hour FROM occurred_at AT TIME ZONE 'Europe/London') h, branch_id,
                     count(*) n, sum(total) s
              FROM warehouse.fact_transaction GROUP BY 1, 2, 3
              EXCEPT
              SELECT local_date, local_hour, branch_id, sum(transactions), sum(revenue)
              FROM warehouse.rollup_sales_hour GROUP BY 1, 2, 3) mismatched""")).scalar()
    assert rollup == (19_448, 53_712, Decimal("119138.75"))
    assert products == (53_712, Decimal("119138.75"))
    assert by_hour == 0


def test_every_fact_joins_its_dimensions(loaded, engine):
    """The fact tables have no enforced foreign keys (load speed); the loader must keep them whole."""
    with engine.connect() as conn:
        orphans = conn.execute(text("""
            SELECT (SELECT count(*) FROM warehouse.fact_transaction f
                    LEFT JOIN warehouse.dim_branch b ON b.id = f.branch_id WHERE b.id IS NULL),
                   (SELECT count(*) FROM warehouse.fact_transaction_item i
                    LEFT JOIN warehouse.fact_transaction f ON f.id = i.transaction_id WHERE f.id IS NULL),
                   (SELECT count(*) FROM warehouse.fact_transaction_item i
                    LEFT JOIN warehouse.dim_product p ON p.id = i.product_id WHERE p.id IS NULL),
                   (SELECT count(*) FROM warehouse.fact_transaction f
                    WHERE NOT EXISTS (SELECT 1 FROM warehouse.fact_transaction_item i
                                      WHERE i.transaction_id = f.id))""")).one()
    assert tuple(orphans) == (0, 0, 0, 0)


def test_the_two_leeds_customers_with_the_same_basket_are_two_sales(loaded, engine):
    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT count(*), count(DISTINCT customer_key) FROM warehouse.fact_transaction f
            JOIN warehouse.dim_branch b ON b.id = f.branch_id
            WHERE b.name = 'Leeds' AND occurred_at = TIMESTAMPTZ '2021-08-30 13:20 Europe/London'
            GROUP BY total, payment_method HAVING count(*) > 1""")).all()
    assert rows == [(2, 2)]


def test_ingest_metrics_count_across_gunicorn_workers(loaded):
    _stack, url, _result, _ = loaded
    body = httpx.get(f"{url}/metrics").text
    assert 'cafeflow_uploads_received_total{outcome="new"} 65.0' in body
    assert 'cafeflow_http_requests_total{method="POST",route="/v1/uploads",service="ingest",status="202"} 65.0' \
        in body


def test_worker_metrics_count_rows_across_prefork_children(loaded):
    stack = loaded[0]
    body = httpx.get(stack.worker_metrics_url).text
    assert 'cafeflow_rows_total{outcome="loaded"} 19448.0' in body
    assert 'cafeflow_uploads_finished_total{status="loaded"} 65.0' in body
    assert 'cafeflow_task_duration_seconds_count{outcome="loaded",task="transform.process_upload"} 65.0' in body


def test_reposting_renaming_and_reencoding_add_nothing(loaded, engine, tmp_path):
    _stack, url, _result, responses = loaded
    again = subprocess.run(CLI + ["upload", str(REAL_FILES), "--url", url, "--token", ADMIN_TOKEN],
                           capture_output=True, text=True, timeout=300)
    responses += [again.stdout, again.stderr]
    assert again.returncode == 0, again.stdout + again.stderr

    source = REAL_FILES / "leeds_30-08-2021_09-00-00.csv"
    renamed = tmp_path / "renamed-copy.csv"
    shutil.copy(source, renamed)
    reencoded = tmp_path / "leeds-crlf-bom.csv"
    reencoded.write_bytes(b"\xef\xbb\xbf" + source.read_bytes().replace(b"\n", b"\r\n"))
    with httpx.Client(base_url=url, headers=HEADERS) as http:
        first = http.post("/v1/uploads", files={"file": (renamed.name, renamed.read_bytes())})
        responses.append(first.text)
        assert first.status_code == 200, first.text
        assert first.json()["filename"] == source.name      # the existing upload
        posted = http.post("/v1/uploads", files={"file": (reencoded.name, reencoded.read_bytes())})
        responses.append(posted.text)
        assert posted.status_code == 202, posted.text
        upload = wait_until(lambda: _finished(http, posted.json()["id"]), 60, "re-encoded upload not loaded")
        responses.append(str(upload))
    lines = sum(1 for line in source.read_text().splitlines() if line.strip())
    assert (upload["status"], upload["rows_loaded"], upload["rows_rejected"], upload["rows_duplicate"]) == (
        "loaded", 0, 0, lines)
    assert warehouse_figures(engine) == (19_448, 53_712, Decimal("119138.75"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ingest.upload")).scalar() == 66


def _finished(http: httpx.Client, upload_id: int):
    body = http.get(f"/v1/uploads/{upload_id}").json()
    return body if body["status"] in ("loaded", "failed") else None


def test_no_name_or_card_number_anywhere(loaded, engine):
    stack, url, _result, responses = loaded
    with httpx.Client(base_url=url, headers=HEADERS) as http:
        listing = http.get("/v1/uploads", params={"page_size": 500})
        responses.append(listing.text)
        for upload in listing.json()["items"]:
            responses.append(http.get(f"/v1/uploads/{upload['id']}").text)
            responses.append(http.get(f"/v1/uploads/{upload['id']}/rejections").text)
    dump = plain_text_dump(engine)
    logs = stack.logs()
    assert "upload loaded" in logs and len(dump) > 1_000_000
    figures = real_figures()
    for where, haystack in {"database dump": dump, "logs": logs, "responses": "\n".join(responses)}.items():
        leaked_names = sorted(figures.names & name_shaped_phrases(haystack, figures.names))
        leaked_cards = sorted(figures.cards & set(_DIGIT_RUN.findall(haystack)))
        assert not leaked_names, f"customer names in the {where}: {leaked_names[:5]}"
        assert not leaked_cards, f"card numbers in the {where}: {leaked_cards[:5]}"


_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
_DIGIT_RUN = re.compile(r"\d{12,19}")


def name_shaped_phrases(haystack: str, names: set[str]) -> set[str]:
    """Every run of 1-4 consecutive words of the haystack, in the spelling of the names searched for."""
    by_folded = {" ".join(_WORD.findall(n.casefold())): n for n in names}
    words = _WORD.findall(haystack.casefold())
    found = set()
    for size in {len(k.split()) for k in by_folded}:
        for i in range(len(words) - size + 1):
            phrase = " ".join(words[i:i + size])
            if phrase in by_folded:
                found.add(by_folded[phrase])
    return found


def plain_text_dump(engine) -> str:
    """Every row of every table in every schema, as COPY text."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("""SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)
                          FROM information_schema.tables
                          WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
                            AND table_type = 'BASE TABLE'""")
        parts = []
        for (table,) in cursor.fetchall():
            buffer = io.StringIO()
            cursor.copy_expert(f"COPY {table} TO STDOUT", buffer)
            parts.append(buffer.getvalue())
        return "\n".join(parts)
    finally:
        raw.close()
