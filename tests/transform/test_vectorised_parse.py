"""The vectorised CSV path (services/transform/csv_vectorised.py) gives what the row-wise path gives: the same
sales and rejections in the same order, the same parse statistics, and the same staged rows, on generated
files with messy rows mixed in, on every real file, and when the stage is a real PostgreSQL COPY."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from services.common.naming import branch_key
from services.tools.generate import branch_name, generate
from services.transform import load
from services.transform.csv_vectorised import SaleBlock, in_line_order, iter_csv_vectorised, parse_csv_files
from services.transform.parse import iter_record_blocks, iter_records, sniff_format
from services.transform.records import ParseStats, Sale
from services.transform.sale_builder import SaleBuilder, ValueMemo

SECRET = "vectorised-test-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
# The repository's copy of the real branch files (the repository stands alone: nothing outside it is read).
REAL_FILES = sorted((ROOT / "samples" / "branch-files").glob("*.csv"))
REGISTERED = ["Leeds", "Isle of Wight", "London Soho", branch_name(0), branch_name(1)]
NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.timezone.utc)


def builder(expected: str | None, registered=REGISTERED, memo: ValueMemo | None = None, now=NOW,
            secret=SECRET) -> SaleBuilder:
    keys = {branch_key(name): name for name in registered}
    return SaleBuilder(secret, expected_branch_key=branch_key(expected) if expected else None,
                       registered_branch_keys=keys, branch_names=keys, now=now, memo=memo)


def both_paths(data_chunks: list[bytes], expected: str | None, block_bytes: int | None = None,
               registered=REGISTERED) -> tuple[tuple, tuple]:
    """(records, stats) of the row-wise path and of the vectorised path, each with a builder of its own."""
    row_stats, vec_stats = ParseStats(), ParseStats()
    rows = list(iter_records(builder(expected, registered), data_chunks, row_stats))
    vec_builder = builder(expected, registered)
    if block_bytes is None or sniff_format(data_chunks[0][:4096].decode("utf-8", "replace")) == "json":
        vec = list(iter_records(vec_builder, data_chunks, vec_stats, vectorised=True))
    else:
        vec = list(in_line_order(iter_csv_vectorised(vec_builder, data_chunks, vec_stats, block_bytes=block_bytes)))
    return (rows, row_stats), (vec, vec_stats)


class _CapturingCursor:
    def __init__(self) -> None:
        self.copied: dict[str, list[bytes]] = {}

    def copy_expert(self, sql: str, source) -> None:
        table = re.search(r"COPY (\w+)", sql).group(1)
        data = source.read()
        self.copied.setdefault(table, []).append(data.encode() if isinstance(data, str) else data)


_QUOTED_EMPTY = re.compile(r'(?<![^,\n])""(?![^,\n])')


def staged_rows(data: bytes, expected: str | None, vectorised: bool, registered=REGISTERED) -> dict[str, list[tuple]]:
    """What the load would COPY into each staging table, as rows with NULL (an unquoted empty cell) told
    apart from an empty string (a quoted one), sorted (staging order within a file is not meaning)."""
    cursor = _CapturingCursor()
    staging = load._Staging(cursor, 1000)
    counts = load._Counts(ParseStats())
    records = iter_record_blocks(builder(expected, registered), [data], counts.stats, vectorised=vectorised)
    load._stage_records(7, records, staging, counts, 300)
    staging.flush()
    tables = {}
    for table, pieces in cursor.copied.items():
        body = _QUOTED_EMPTY.sub('"\x01empty"', b"".join(pieces).decode())
        tables[table] = sorted(tuple(None if cell == "" else "" if cell == "\x01empty" else cell for cell in row)
                               for row in csv.reader(io.StringIO(body)))
    return tables | {"counts": (counts.valid, counts.rejected, counts.structural, counts.foreign)}


def assert_same(data: bytes, expected: str | None, chunk_sizes=(), block_bytes: int | None = None,
                registered=REGISTERED) -> list:
    chunks, start = [], 0
    for size in chunk_sizes:
        chunks.append(data[start:start + size])
        start += size
    chunks.append(data[start:])
    (rows, row_stats), (vec, vec_stats) = both_paths(chunks, expected, block_bytes, registered)
    assert vec == rows
    assert vec_stats == row_stats
    return rows


# -- lines ----------------------------------------------------------------------------------------------------------
GOOD = [
    '25/08/2021 09:00,Leeds,Thomas Douglas,"Regular Chai latte - 2.30, Large Iced americano - 2.50",4.8,CASH,',
    '25/08/2021 09:01,Leeds,Angelia Mills,"Large Hot Chocolate - 1.70, Large Filter coffee - 1.80",3.5,CARD,'
    '7789883645846795',
    "25/08/2021 09:02,Leeds,Zoë Brontë,Large Flavoured latte - Hazelnut - 2.85,2.85,CARD,5815018216056708",
    '25/08/2021 09:02,Leeds,Zoë Brontë,"Large Latte - 2.45, Large Latte - 2.45, Regular Latte - 2.15",7.05,CASH,',
    '25/08/2021 09:03,Leeds,,"Regular Chai latte - 2.30",2.30,CASH,',
    '26/08/2021 17:59,Leeds,Ann  Lee,"Regular Chai latte - 2.30, Regular Chai latte - 2.30",4.60,CARD,',
]
MESSY = [
    "",                                                         # blank line
    "   ",
    "timestamp,branch,customer,basket,total,payment,card",        # a header
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.3.0",2.30,CASH,',      # bad money in the basket
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.3x,CASH,',       # bad total
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",9.30,CASH,',       # total mismatch
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.31,CASH,',       # within a penny: valid
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,cash,',       # lower-case payment: valid
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,BITCOIN,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH',        # six cells
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,,',      # eight cells
    '25/08/2021 09:04,Leeds,Bob,Regular Chai latte - 2.30,Large Tea - 1.00,3.30,CASH,',
    '25/08/2021 09:04,Leeds,"Bob ""the"" Builder","Regular Chai latte - 2.30",2.30,CASH,',   # quotes in a cell
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30,2.30,CASH,',        # unclosed quote
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30"x,2.30,CASH,',      # text after a quote
    '"25/08/2021 09:04",Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',     # quoted timestamp
    '25/08/2021 09:04,=HYPERLINK("x"),Bob,"Regular Chai latte - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"=cmd - 2.30",2.30,CASH,',                    # formula product
    '25/08/2021 09:04,Leeds,bob@example.com 07700900123,"Regular Chai latte - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2000.00",2000.00,CASH,',  # price over 1000.00
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 9999999.99",9999999.99,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 0.00",0.00,CASH,',       # a free item
    '25/08/2021 09:04,Leeds,Bob,"' + ", ".join(["Regular Tea - 1.00"] * 101) + '",101.00,CASH,',   # 101 items
    '25/08/2021 09:04,Leeds,Bob,"",0.00,CASH,',                               # empty basket
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30, ",2.30,CASH,',     # empty item
    '25/08/2021 09:04,Leeds,Bob,"Huge Chai latte - 2.30",2.30,CASH,',          # not a size: part of the name
    '25/08/2021 09:04,Leeds,Bob,"Large,Latte,2.45",2.45,CASH,',                # a dialect-B basket
    '25/08/2021 09:04,Leeds,Bob,",Latte,2.45",2.45,CASH,',
    '25/08/2021 09:04,Birmingham,Bob,"Regular Chai latte - 2.30",2.30,CASH,',  # not registered
    '25/08/2021 09:04,London Soho,Bob,"Regular Chai latte - 2.30",2.30,CASH,',  # another registered branch
    '25/08/2021 09:04, leeds ,Bob,"Regular Chai latte - 2.30",2.30,CASH,',     # spacing and case
    '25/08/2021 09:04,,Bob,"Regular Chai latte - 2.30",2.30,CASH,',            # no branch
    '31/02/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',       # not a date
    '28/03/2021 01:30,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',       # clocks went forward
    '31/10/2021 01:30,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',       # clocks went back
    '25/08/2031 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',       # future
    '11/01/2026 11:59,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',       # just under a day ahead
    '11/01/2026 12:01,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',       # just over
    '25/08/1999 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',       # too old
    '25/08/2021 09:61,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',       # minute 61
    '5/8/2021 9:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',          # short date
    '2021-08-25 09:04:05,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',    # the other dialect's time
    '2021-08-25T09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",£2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30 ,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,visa16,4111111111111111',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CARD,"mastercard,5500000000000004"',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CARD,None',
    '25/08/2021 09:04,Leeds,' + "x" * 600 + ',"Regular Chai latte - 2.30",2.30,CASH,',        # long name
    '25/08/2021 09:04,' + "L" * 150 + ',Bob,"Regular Chai latte - 2.30",2.30,CASH,',        # long branch
    '25/08/2021 09:04,Leeds,Bob,"Regular ' + "T" * 300 + ' - 2.30",2.30,CASH,',          # long item
    '2021-02-23 09:01:45,Isle of Wight,William Perdomo,"Large,Latte,2.45",CARD,2.45,"discover,6011776257398866"',
    "2021-02-23 09:00:48,Isle of Wight,Morgan Berka,\"Large,Hot chocolate,2.9\",CASH,2.9,None",
    "timestamp,branch,custumer,basket,method,price,card",
    '25/08/2021 09:04,Leeds,Bob\x00,"Regular Chai latte - 2.30",2.30,CASH,',     # NUL
    '25/08/2021 09:04,Leeds,Bob\t\x0b\x1c,"Regular Chai latte - 2.30",2.30,CASH,',  # odd whitespace
    '25/08/2021 09:04,Leeds,BOB,"Regular Chai latte - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"regular chai LATTE - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte -2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.3",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2",2.00,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - .30",0.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - Vanilla - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte -  - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Large  Chai   latte - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Small Chai latte - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular - 2.30",2.30,CASH,',
    '25/08/2021 09:04,Leeds,Bob,"Regular Chai latte - 2.30",2.30,CASH,' + "9" * 70_000,   # overlong line
]
LINES = GOOD + MESSY
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8", "cp1252", "bom"])
ENDINGS = st.sampled_from(["\n", "\n", "\r\n", "\r"])


def encode(line: str, encoding: str) -> bytes:
    if encoding == "bom":
        return b"\xef\xbb\xbf" + line.encode()
    return line.encode(encoding, errors="replace")


files = st.lists(st.tuples(st.sampled_from(LINES), ENCODINGS, ENDINGS), max_size=40).map(
    lambda lines: b"".join(encode(line, encoding) + ending.encode() for line, encoding, ending in lines))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files, st.sampled_from([None, "Leeds"]), st.lists(st.integers(1, 400), max_size=6),
       st.sampled_from([None, 1, 64, 300, 2048]), st.booleans())
def test_messy_files_parse_the_same_both_ways(data, expected, chunk_sizes, block_bytes, no_final_end):
    if no_final_end:
        data = data.rstrip(b"\r\n")
    assert_same(data, expected, chunk_sizes, block_bytes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files, st.sampled_from([None, "Leeds"]))
def test_messy_files_stage_the_same_rows_both_ways(data, expected):
    assert staged_rows(data, expected, vectorised=True) == staged_rows(data, expected, vectorised=False)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(files, st.sampled_from([None, "Leeds", "Isle of Wight"]),
                          st.sampled_from([NOW, NOW + dt.timedelta(minutes=1), NOW - dt.timedelta(hours=3)]),
                          st.sampled_from([SECRET, SECRET, SECRET + "-other"])), max_size=5))
def test_files_parsed_together_parse_as_each_alone(batch):
    """A load batch's small files parsed as one block: each file's records and statistics are what the
    row-wise path gives it alone, whatever the other files hold, their expected branches and their clocks."""
    memo = ValueMemo()                       # shared by a batch's builders, as in the worker
    together = [(builder(expected, memo=memo, now=now, secret=secret), data, ParseStats())
                for data, expected, now, secret in batch]
    parsed = parse_csv_files(together)
    for (data, expected, now, secret), (_builder, _data, stats), records in zip(batch, together, parsed):
        row_stats = ParseStats()
        alone = list(iter_records(builder(expected, now=now, secret=secret), [data], row_stats))
        assert list(in_line_order(records)) == alone
        assert stats == row_stats


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=400).map(str.encode), st.sampled_from([None, 7, 64]))
def test_arbitrary_bytes_parse_the_same_both_ways(data, block_bytes):
    assert_same(data, None, (), block_bytes)


def test_the_vectorised_path_takes_the_common_lines():
    """Not a behaviour of the output (that is the row-wise one by the tests above) but of the path: the till's
    usual lines are read as blocks, or the comparisons above would hold trivially."""
    data = "\n".join(GOOD).encode()
    records = list(iter_csv_vectorised(builder("Leeds"), [data], ParseStats()))
    assert [len(r) for r in records if isinstance(r, SaleBlock)] == [len(GOOD)]


@pytest.fixture(scope="module")
def generated_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("generated")
    paths = generate(out / "a", branches=2, days=2, dialect="a", seed=5, start=dt.date(2024, 3, 4),
                     transactions_per_day=400)
    paths += generate(out / "b", branches=2, days=1, dialect="b", seed=6, start=dt.date(2024, 3, 4),
                      transactions_per_day=200)
    return paths


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_generated_files_with_messy_rows_parse_the_same_both_ways(generated_files, data):
    path = data.draw(st.sampled_from(generated_files))
    lines = path.read_bytes().split(b"\n")
    for _ in range(data.draw(st.integers(0, 12))):
        at = data.draw(st.integers(0, len(lines)))
        messy = data.draw(st.sampled_from(MESSY))
        lines.insert(at, encode(messy, data.draw(ENCODINGS)))
    registered = [branch_name(0), branch_name(1), "Leeds"]
    expected = data.draw(st.sampled_from([None, branch_name(0)]))
    assert_same(b"\n".join(lines), expected, data.draw(st.lists(st.integers(1, 5000), max_size=4)),
                data.draw(st.sampled_from([None, 4096, 50_000])), registered)


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_real_files_parse_and_stage_the_same_both_ways(path):
    data = path.read_bytes()
    cells = [row[1] for row in csv.reader(io.StringIO(data.decode("utf-8", "replace"))) if len(row) == 7]
    branch = max(set(cells), key=cells.count)
    rows = assert_same(data, branch, (), None, [branch])
    assert sum(isinstance(r, Sale) for r in rows) > 0.9 * len(cells)
    assert staged_rows(data, branch, True, [branch]) == staged_rows(data, branch, False, [branch])


def test_staged_rows_are_the_same_in_postgresql(clean, tmp_path):
    """The COPY text of both paths, loaded by PostgreSQL into the staging tables, gives the same rows (NULLs,
    numerics, uuids), on generated files with messy rows and on a real file."""
    generated = generate(tmp_path, branches=1, days=1, dialect="a", seed=9, start=dt.date(2024, 3, 4),
                         transactions_per_day=3000)[0].read_bytes()
    messy = generated + "\n".join(MESSY[:-1]).encode() + b"\n" + generated
    tables = ("stage_sale", "stage_item", "stage_reject")
    for data in [messy] + [path.read_bytes() for path in REAL_FILES[:1]]:
        staged = []
        for vectorised in (False, True):
            with clean.connect() as conn:
                conn.execute(text(load._STAGING))
                staging = load._Staging(conn.connection.cursor(), 1000)
                counts = load._Counts(ParseStats())
                build = builder(None, [branch_name(0), "Leeds", "Birmingham"])
                load._stage_records(3, iter_record_blocks(build, [data], counts.stats, vectorised=vectorised),
                                    staging, counts, 500)
                staging.flush()
                staged.append({table: conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2, 3")).all()
                               for table in tables})
                conn.rollback()
        assert staged[0] == staged[1]
        assert len(staged[0]["stage_sale"]) > 200 and len(staged[0]["stage_item"]) > 200
        assert bool(staged[0]["stage_reject"]) == (data is messy)
