"""Tests for services.tools.generate: determinism, exact money, and the shape of the real files."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import pathlib
import re
import subprocess
import sys
from collections import Counter
from decimal import Decimal

import pytest
from click.testing import CliRunner

from services.tools.generate import (
    ACCENTED_NAMES,
    BRANCH_NAMES,
    MENU,
    branch_name,
    branch_slug,
    generate,
    generate_command,
)
from tests.support import REAL_FILES
from tests.support import ROOT as REPO

BRANCHES, DAYS, PER_DAY = 3, 2, 200
START = dt.date(2024, 2, 28)  # second day is the leap day

A_TIMESTAMP = re.compile(r"^(\d\d)/(\d\d)/(\d{4}) (\d\d):(\d\d)$")
A_ITEM = re.compile(r"^(?:(Regular|Large) )?(.+) - (\d+\.\d\d)$")
B_TIMESTAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)$")
SHORT_MONEY = re.compile(r"^\d+\.\d\d?$")  # how the tills print totals: 6.5, 4.0, 7.05
FILE_NAME = re.compile(r"^[a-z0-9_-]+_(\d\d)-(\d\d)-(\d{4})_09-00-00\.(csv|json)$")
B_HEADER = [
    "timestamp,branch,custumer,basket,method,price,card",
    "timestamp,branch,custumer,basket,method,price,card",
    "timestamp,branch,custumer,basket,price,method,card",
    "timestamp,branch,custumer,basket,price,method,card",
    "timestamp,branch,custumer,basket,price,method,card",
    "timestamp,branch,custumer,basket,price,method,card",
]
CARD_LENGTHS = {"visa": 16, "mastercard": 16, "discover": 16, "americanexpress": 15}


def _run(tmp_path_factory, dialect: str, seed: int = 7) -> list[pathlib.Path]:
    out = tmp_path_factory.mktemp(f"gen_{dialect}_{seed}")
    return generate(
        out, BRANCHES, DAYS, dialect=dialect, seed=seed, start=START, transactions_per_day=PER_DAY
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, list[pathlib.Path]]:
    return {d: _run(tmp_path_factory, d) for d in ("a", "b", "json")}


def _rows(path: pathlib.Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _b_items(basket: str) -> list[tuple[str, str, str]]:
    parts = basket.split(",")
    assert len(parts) % 3 == 0, basket
    return [(parts[i + 1], parts[i], parts[i + 2]) for i in range(0, len(parts), 3)]


def _file_date(path: pathlib.Path) -> dt.date:
    m = FILE_NAME.match(path.name)
    assert m, path.name
    return dt.date(int(m[3]), int(m[2]), int(m[1]))


# --- files, names, determinism -------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["a", "b", "json"])
def test_one_file_per_branch_per_day(files, dialect):
    paths = files[dialect]
    assert len(paths) == BRANCHES * DAYS
    assert len(set(paths)) == len(paths)
    ext = "json" if dialect == "json" else "csv"
    for p in paths:
        assert p.is_file() and p.name.endswith("." + ext)
        assert START <= _file_date(p) < START + dt.timedelta(days=DAYS)
    assert {p.name for p in paths} >= {
        f"birmingham_28-02-2024_09-00-00.{ext}",
        f"leeds_29-02-2024_09-00-00.{ext}",
    }


@pytest.mark.parametrize("dialect", ["a", "b", "json"])
def test_same_seed_same_bytes_other_seed_other_bytes(files, tmp_path_factory, dialect):
    again = _run(tmp_path_factory, dialect)
    other = _run(tmp_path_factory, dialect, seed=8)
    assert [p.name for p in again] == [p.name for p in files[dialect]] == [p.name for p in other]
    for first, second, third in zip(files[dialect], again, other):
        assert first.read_bytes() == second.read_bytes()
        assert first.read_bytes() != third.read_bytes()


def test_same_bytes_in_a_fresh_interpreter(files, tmp_path):
    """No dependence on hash randomisation or on state left by earlier calls in this process."""
    code = (
        "import sys, pathlib, datetime as dt\n"
        "from services.tools.generate import generate\n"
        f"generate(pathlib.Path(sys.argv[1]), {BRANCHES}, {DAYS}, 'a', 7,"
        f" dt.date.fromisoformat('{START}'), {PER_DAY})\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=REPO, env=env)
    for p in files["a"]:
        assert (tmp_path / p.name).read_bytes() == p.read_bytes()


def test_files_are_utf8_with_lf_and_accented_names(files):
    names = set()
    for dialect, paths in files.items():
        for p in paths:
            data = p.read_bytes()
            assert b"\r" not in data and not data.startswith(b"\xef\xbb\xbf")
            assert data.endswith(b"\n") and b"\n\n" not in data
            text = data.decode("utf-8")
            if dialect == "a":
                names.update(row[2] for row in csv.reader(text.splitlines()))
    assert names & set(ACCENTED_NAMES), "some customers should have accented names"
    assert len(names) > 500


def test_branch_names_extend_with_numbers():
    n = len(BRANCH_NAMES)
    names = [branch_name(i) for i in range(2 * n + 3)]
    assert names[:n] == list(BRANCH_NAMES)
    assert names[n + 2] == f"{BRANCH_NAMES[2]} 2" == "Leeds 2"
    assert names[2 * n] == f"{BRANCH_NAMES[0]} 3"
    slugs = [branch_slug(x) for x in names]
    assert len(set(slugs)) == len(slugs)
    assert branch_slug("London Brixton") == "london_brixton"
    assert branch_slug("Leeds 2") == "leeds_2"
    assert all(re.fullmatch(r"[a-z0-9_-]+", s) for s in slugs)


def test_more_branches_than_names(tmp_path):
    paths = generate(tmp_path, len(BRANCH_NAMES) + 2, 1, transactions_per_day=3)
    assert len(paths) == len(BRANCH_NAMES) + 2
    assert {_rows(p)[0][1] for p in paths} >= {"Birmingham 2", "Chesterfield 2"}


def test_rejects_unknown_dialect(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path, 1, 1, dialect="c")


# --- dialect A ----------------------------------------------------------------------------------------


def test_dialect_a_rows_have_the_real_shape(files):
    menu = set(MENU)
    for p in files["a"]:
        rows = _rows(p)
        assert len(rows) == PER_DAY
        day = _file_date(p)
        stamps = []
        branches = {r[1] for r in rows}
        assert (
            len(branches) == 1 and branch_slug(branches.pop()) == p.name.split("_" + day.strftime("%d-%m"))[0]
        )
        for row in rows:
            assert len(row) == 7, row
            m = A_TIMESTAMP.match(row[0])
            assert m, row
            assert dt.date(int(m[3]), int(m[2]), int(m[1])) == day
            assert 7 <= int(m[4]) <= 19 and 0 <= int(m[5]) <= 59
            stamps.append((int(m[4]), int(m[5])))
            assert row[2].strip() == row[2] and row[2]
            items = row[3].split(", ")
            assert 1 <= len(items) <= 6
            for item in items:
                im = A_ITEM.match(item)
                assert im, item
                assert (im[2], im[1] or "", im[3]) in menu, item
            assert SHORT_MONEY.match(row[4]), row
            assert row[5] in ("CASH", "CARD")
            if row[5] == "CARD":
                assert re.fullmatch(r"[1-9]\d{15}", row[6]), row
            else:
                assert row[6] == ""
        assert stamps == sorted(stamps)


def test_dialect_a_totals_are_exact_basket_sums(files):
    for p in files["a"]:
        for row in _rows(p):
            basket_sum = sum(Decimal(A_ITEM.match(i)[3]) for i in row[3].split(", "))
            assert Decimal(row[4]) == basket_sum, row


def test_dialect_a_total_printed_like_the_tills(files):
    seen = Counter()
    for p in files["a"]:
        for row in _rows(p):
            total = Decimal(row[4])
            two = f"{total:.2f}"
            assert row[4] == (two.removesuffix("0"))
            seen[len(row[4].split(".")[1])] += 1
    assert seen[1] and seen[2]  # both 6.5-style and 7.05-style totals occur


def test_dialect_a_single_item_basket_unquoted_multi_item_quoted(files):
    lines = files["a"][0].read_text(encoding="utf-8").splitlines()
    single = [ln for ln in lines if ln.count(",") == 6]
    multi = [ln for ln in lines if ", " in ln]
    assert single and multi
    assert all('"' not in ln for ln in single)
    assert all(ln.split(",", 3)[3].startswith('"') for ln in multi)


def test_payment_mix(files):
    methods = Counter(row[5] for p in files["a"] for row in _rows(p))
    share = methods["CARD"] / sum(methods.values())
    assert 0.45 < share < 0.65


# --- dialect B ----------------------------------------------------------------------------------------


def test_dialect_b_header_and_rows(files):
    menu = {(n, s, f"{Decimal(pr):.2f}") for n, s, pr in MENU}
    networks = Counter()
    for p in files["b"]:
        lines = p.read_text(encoding="utf-8").splitlines()
        assert lines[:6] == B_HEADER
        rows = _rows(p)[6:]
        assert len(rows) == PER_DAY
        day = _file_date(p)
        stamps = []
        for row in rows:
            assert len(row) == 7, row
            m = B_TIMESTAMP.match(row[0])
            assert m, row
            assert dt.date(int(m[1]), int(m[2]), int(m[3])) == day
            assert 7 <= int(m[4]) <= 19
            stamps.append(row[0])
            items = _b_items(row[3])
            assert 1 <= len(items) <= 6
            for name, size, price in items:
                assert size in ("", "Regular", "Large")
                assert SHORT_MONEY.match(price)
                assert (name, size, f"{Decimal(price):.2f}") in menu
            assert row[4] in ("CASH", "CARD")  # method before total, as the real rows have it
            assert SHORT_MONEY.match(row[5])
            assert Decimal(row[5]) == sum(Decimal(pr) for _, _, pr in items)
            if row[4] == "CARD":
                network, number = row[6].split(",")
                networks[network] += 1
                assert number.isdigit() and len(number) == CARD_LENGTHS[network], row
            else:
                assert row[6] == "None"
        assert stamps == sorted(stamps)
    assert set(networks) == set(CARD_LENGTHS)


def test_dialect_b_has_one_size_items(files):
    sizes = Counter(size for p in files["b"] for row in _rows(p)[6:] for _, size, _ in _b_items(row[3]))
    assert sizes[""] and sizes["Regular"] and sizes["Large"]


# --- JSON ---------------------------------------------------------------------------------------------


def test_json_lines_parse_and_sum(files):
    keys = ["timestamp", "branch", "customer", "items", "total", "payment_method", "card_number"]
    for p_json, p_a in zip(files["json"], files["a"]):
        lines = p_json.read_text(encoding="utf-8").splitlines()
        rows_a = _rows(p_a)
        assert len(lines) == len(rows_a) == PER_DAY
        for line, row_a in zip(lines, rows_a):
            sale = json.loads(line)
            assert list(sale) == keys
            stamp = dt.datetime.fromisoformat(sale["timestamp"])
            assert stamp.tzinfo is None and stamp.date() == _file_date(p_json)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", sale["timestamp"])
            pairs = [(it["name"], it["size"], it["price"]) for it in sale["items"]]
            assert len(pairs) == len(set(pairs)), "repeated items are merged into quantity"
            for it in sale["items"]:
                assert (it["name"], it["size"], it["price"]) in MENU
                assert isinstance(it["quantity"], int) and it["quantity"] >= 1
            assert re.fullmatch(r"\d+\.\d\d", sale["total"])
            assert Decimal(sale["total"]) == sum(
                Decimal(it["price"]) * it["quantity"] for it in sale["items"]
            )
            # same seed, same sales in every dialect: quantities add up to the dialect-A basket
            assert sum(it["quantity"] for it in sale["items"]) == len(row_a[3].split(", "))
            assert Decimal(sale["total"]) == Decimal(row_a[4])
            assert sale["customer"] == row_a[2] and sale["payment_method"] == row_a[5]
            if sale["payment_method"] == "CARD":
                assert re.fullmatch(r"\d{16}", sale["card_number"])
            else:
                assert sale["card_number"] is None


# --- the real files -----------------------------------------------------------------------------------


def _real_items() -> set[tuple[str, str, str]]:
    """(name, size, price with two decimals) of every basket item in the real branch files."""
    if not REAL_FILES.is_dir():
        pytest.fail(f"real branch files not found at {REAL_FILES}")
    items: set[tuple[str, str, str]] = set()
    for path in sorted(REAL_FILES.glob("*.csv")):
        for row in _rows(path):
            if not row or row[0] == "timestamp":
                continue
            if A_TIMESTAMP.match(row[0]):
                for item in row[3].split(", "):
                    m = A_ITEM.match(item)
                    items.add((m[2], m[1] or "", m[3]))
            else:
                for name, size, price in _b_items(row[3]):
                    items.add((name, size, f"{Decimal(price):.2f}"))
    return items


def test_menu_comes_from_the_real_files():
    real = _real_items()
    assert set(MENU) <= real
    assert len(set(MENU)) == len(MENU)
    assert ("Chai latte", "Regular", "2.30") in MENU
    assert ("Babyccino", "", "0.00") in MENU
    for name, size, price in MENU:
        assert re.fullmatch(r"\d+\.\d\d", price) and size in ("", "Regular", "Large") and name


def test_generated_items_appear_in_the_real_files(files):
    real = _real_items()
    for p in files["a"]:
        for row in _rows(p):
            for item in row[3].split(", "):
                m = A_ITEM.match(item)
                assert (m[2], m[1] or "", m[3]) in real, item


# --- CLI ----------------------------------------------------------------------------------------------


def test_cli_writes_files_and_prints_summary(tmp_path):
    out = tmp_path / "new" / "dir"
    result = CliRunner().invoke(
        generate_command,
        [
            "--branches",
            "2",
            "--days",
            "3",
            "--out",
            str(out),
            "--dialect",
            "json",
            "--seed",
            "3",
            "--start",
            "2024-05-01",
            "--per-day",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    files = sorted(out.iterdir())
    assert len(files) == 6 and all(f.suffix == ".json" for f in files)
    n_items = sum(
        it["quantity"]
        for f in files
        for line in f.read_text(encoding="utf-8").splitlines()
        for it in json.loads(line)["items"]
    )
    assert result.output == f"wrote 6 files, 60 transactions, {n_items} items to {out}\n"
    assert (out / "birmingham_03-05-2024_09-00-00.json").exists()


def test_cli_requires_options_and_checks_dialect(tmp_path):
    runner = CliRunner()
    assert runner.invoke(generate_command, ["--days", "1", "--out", str(tmp_path)]).exit_code != 0
    bad = runner.invoke(
        generate_command, ["--branches", "1", "--days", "1", "--out", str(tmp_path), "--dialect", "c"]
    )
    assert bad.exit_code != 0
