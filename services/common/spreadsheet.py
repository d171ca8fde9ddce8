"""CSV the product writes for people: cells a spreadsheet opens as data, never as a formula.

Analysts open exports in Excel or LibreOffice, which run a cell starting with `=`, `+`, `-` or `@` (and,
after a tab or carriage return, whatever follows) as a formula: `=HYPERLINK(...)` becomes a link,
`=cmd|' /C calc'!A0` can start a program. Names reach our CSVs from branch files, from the first spelling of
a branch and from products created through orders, so no text is trusted: following OWASP's CSV injection
guidance, a text cell starting with one of those characters gets a leading `'`, which spreadsheets show as
text. The full-width forms are included because some spreadsheets, in East Asian locales, read them as the
ASCII ones. Numbers, dates and booleans are written as they are: `-1.50` as an amount stays a number.

Every CSV the product writes goes through `csv_writer` or `csv_line`: the exports, the rejected rows shown to
a branch manager, `cafeflow generate`'s files. A test checks that no other module builds a csv writer, except
the loader's COPY buffers, which only PostgreSQL reads."""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe_cell(value: Any) -> Any:
    """A text cell neutralised (leading `'`) when a spreadsheet would read it as a formula; dates as ISO
    text; numbers, booleans and None unchanged."""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_START) else value
    if isinstance(value, (dt.date, dt.time)):      # datetime is a date too; ISO text never starts a formula
        return value.isoformat()
    return value


class SafeWriter:
    """csv.writer's writerow/writerows, every cell through `safe_cell`."""

    def __init__(self, stream: TextIO) -> None:
        self._writer = csv.writer(stream, lineterminator="\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        self._writer.writerows([safe_cell(value) for value in row] for row in rows)


def csv_writer(stream: TextIO) -> SafeWriter:
    return SafeWriter(stream)


def csv_line(cells: Iterable[Any]) -> str:
    """One CSV line, without its line ending (a rejected row shown to a branch manager)."""
    buffer = io.StringIO()
    SafeWriter(buffer).writerow(cells)
    return buffer.getvalue()[:-1]
