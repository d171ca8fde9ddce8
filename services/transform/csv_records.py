"""Branch till CSV: bytes read as lines (LF, CRLF or a bare CR; each line decoded on its own), each
line parsed as one record of either dialect (decided from the values, not the header)."""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator

from services.transform.records import (BOM, EXPECTED_FIELDS, MAX_LINE_BYTES, METHODS, ParseStats, Reject, Rejection,
                                        Sale)
from services.transform.sale_builder import SaleBuilder
from services.transform.values import card_network

OVERLONG = object()
_EOL = re.compile(rb"\r\n?|\n")


def iter_lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, str | object]]:
    """(line number, text) for every physical line, whatever its ending (LF, CRLF or a bare CR);
    OVERLONG instead of the text of a line over MAX_LINE_BYTES, skipped without being held."""
    number, pending, skipping, cr_at_end = 0, bytearray(), False, False
    for chunk in chunks:
        if cr_at_end and chunk.startswith(b"\n"):
            chunk = chunk[1:]                      # the LF of a CRLF split across two chunks
        cr_at_end = chunk.endswith(b"\r")
        start = 0
        for match in _EOL.finditer(chunk):
            number += 1
            if skipping:
                skipping = False
                yield number, OVERLONG
            else:
                pending += chunk[start:match.start()]
                yield number, OVERLONG if len(pending) > MAX_LINE_BYTES else decode_line(bytes(pending))
            pending.clear()
            start = match.end()
        if not skipping:
            pending += chunk[start:]
            if len(pending) > MAX_LINE_BYTES:
                pending.clear()
                skipping = True
    if skipping:
        yield number + 1, OVERLONG
    elif pending:
        yield number + 1, decode_line(bytes(pending))


def decode_line(raw: bytes) -> str:
    """One line as text: UTF-8, else Windows-1252 (what a spreadsheet on a till PC writes)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return text.lstrip(BOM)


def parse_csv_record(builder: SaleBuilder, line_no: int, fields: list[str], stats: ParseStats) -> Sale:
    if len(fields) != EXPECTED_FIELDS:
        raise Reject("wrong_field_count", f"the line has {len(fields)} cells, expected {EXPECTED_FIELDS} "
                                          "(cut short, or a stray comma?)")
    ts, branch, customer, basket, fifth, sixth, card = fields
    if fifth.strip().upper() in METHODS:        # dialect B writes method before total, A after
        method, total = fifth, sixth
    elif sixth.strip().upper() in METHODS:
        total, method = fifth, sixth
    else:
        raise Reject("bad_payment", "no payment method: expected CASH or CARD in column 5 or 6")
    items, dialect, identity = builder.basket(basket)
    stats.saw(dialect)
    return builder.sale(line_no=line_no, ts=ts, branch=branch, customer=customer, items=items, total=total,
                        method=method, card_network=card_network(card), basket_identity=identity)


def is_header(fields: list[str]) -> bool:
    """A spreadsheet's own header line, in any wording ("timestamp,branch,...", "Date,Store,Customer,Items,
    Total,Payment,Card", ...): short cells of words and not one digit. Every sales row has digits (its time
    and total), so no sale is ever taken for a header."""
    cells = [cell.strip() for cell in fields]
    worded = [cell for cell in cells if cell]
    return (len(worded) >= 3 and all(len(cell) <= 40 for cell in worded)
            and not any(ch.isdigit() for cell in cells for ch in cell)
            and all(any(ch.isalpha() for ch in cell) for cell in worded))


def _split_record(line: str) -> list[str]:
    """The cells of one CSV line. The usual till line has no quotes, or one quoted basket cell: split
    on commas without building a csv reader (what the reader would return, exactly); anything else
    goes to the csv module."""
    quotes = line.count('"')
    if quotes == 0:
        return line.split(",") if line else []
    if quotes == 2:
        before, quoted, after = line.split('"')
        if (not before or before[-1] == ",") and (not after or after[0] == ","):
            cells = before[:-1].split(",") if before else []
            cells.append(quoted)
            if after:
                cells += after[1:].split(",")
            return cells
    return next(csv.reader((line,)))


def iter_csv(builder: SaleBuilder, lines: Iterator[tuple[int, str | object]],
             stats: ParseStats) -> Iterator[Sale | Rejection]:
    for line_no, line in lines:
        record = csv_line_record(builder, line_no, line, stats)
        if record is not None:
            yield record


def csv_line_record(builder: SaleBuilder, line_no: int, line: str | object,
                    stats: ParseStats) -> Sale | Rejection | None:
    """One line's sale or rejection; None for a blank or header line."""
    if line is OVERLONG:
        return Rejection(line_no, "unreadable_line", f"the line is longer than {MAX_LINE_BYTES} bytes", "<hidden>")
    if "\x00" in line:
        return Rejection(line_no, "unreadable_line", "the line contains NUL bytes (binary data in the file?)",
                         "<hidden>")
    if not line.strip():
        return None
    try:
        fields = _split_record(line)        # one record per line: a stray quote spoils only its line
    except csv.Error:
        return Rejection(line_no, "unreadable_line", "the line cannot be read as CSV (a stray carriage "
                         "return or quote?)", "<hidden>")
    if is_header(fields):
        return None                       # header lines, possibly repeated; columns come from the values
    try:
        return parse_csv_record(builder, line_no, fields, stats)
    except Reject as rej:
        return Rejection(line_no, rej.code, rej.reason, builder.masked_csv(fields))
