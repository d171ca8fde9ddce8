"""Branch JSON sales: arrays or newline-delimited objects, read incrementally; of unknown fields, what
services/transform/extra_fields.py allows is kept."""
from __future__ import annotations

import codecs
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from services.transform.extra_fields import clean_extra
from services.transform.records import (BOM, JSON_FIELDS, MAX_JSON_RECORD, MAX_QUANTITY, UNSTORABLE_REASON, Item,
                                        ParseStats, Reject, Rejection, Sale)
from services.transform.sale_builder import SaleBuilder
from services.transform.values import card_network, network_word, storable

def iter_json(builder: SaleBuilder, pieces: Iterator[str], stats: ParseStats) -> Iterator[Sale | Rejection]:
    """Newline-delimited objects, or one or more arrays of objects; read incrementally either way."""
    for number, record in _json_records(pieces):
        if isinstance(record, Rejection):
            yield record
            continue
        try:
            yield json_sale(builder, number, record, stats)
        except Reject as rej:
            yield Rejection(number, rej.code, rej.reason, builder.masked_json(record))
        except RecursionError:
            yield Rejection(number, "bad_json", "the record is nested too deeply", "<unreadable>")


def json_text(chunks: Iterable[bytes]) -> Iterator[str]:
    """JSON is UTF-8 (RFC 8259): decoded incrementally, any invalid byte replaced, a BOM dropped."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    first = True
    for chunk in chunks:
        text = decoder.decode(chunk)
        if first and text:
            text, first = text.lstrip(BOM), False
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def _json_records(pieces: Iterator[str]) -> Iterator[tuple[int, Any]]:
    """Yields (record number, object or Rejection), records numbered in order. A broken record is
    rejected and reading resumes right after it (found by bracket depth), so nothing else is lost;
    no record may exceed MAX_JSON_RECORD characters."""
    decoder = json.JSONDecoder()
    buffer, position, in_array, eof, number = "", 0, False, False, 0
    source = iter(pieces)

    def more() -> bool:
        nonlocal buffer, position, eof
        piece = next(source, None)
        if piece is None:
            eof = True
            return False
        buffer, position = buffer[position:] + piece, 0
        return True

    while True:
        while position < len(buffer) and (buffer[position].isspace() or buffer[position] == ","):
            position += 1
        if position >= len(buffer):
            if eof or not more():
                return
            continue
        char = buffer[position]
        if char == "[" and not in_array:
            in_array, position = True, position + 1
            continue
        if char == "]" and in_array:
            in_array, position = False, position + 1
            continue
        try:
            value, end = decoder.raw_decode(buffer, position)
        except (json.JSONDecodeError, ValueError, RecursionError):
            end = _value_end(buffer, position, in_array)
            if end is None and not eof and len(buffer) - position < MAX_JSON_RECORD and more():
                continue                      # the record continues in the next piece
            number += 1
            yield number, Rejection(number, "bad_json", "the record is not valid JSON (or is larger than "
                                    f"{MAX_JSON_RECORD // 1024} KiB, or nested too deeply)", "<unreadable>")
            position = end if end is not None else len(buffer)
            continue
        if end == len(buffer) and not eof and not isinstance(value, (dict, list)) and more():
            continue                          # a bare number may go on in the next piece
        number += 1
        position = end
        yield number, value


def _value_end(buffer: str, start: int, in_array: bool) -> int | None:
    """Where a broken record ends, so reading resumes right after it; None when the buffer ends first.
    Outside an array records are one per line: the record's closing bracket if it is on that line,
    else the line's end. Inside an array: the closing bracket, or a line that starts with "{" at the
    broken record's own indentation (an object whose brace never closes would swallow the rest)."""
    if not in_array:
        newline = buffer.find("\n", start)
        if newline < 0:
            return None
        closed = _closing_bracket(buffer, start, newline, None)
        return closed if closed is not None else newline
    line_start = buffer.rfind("\n", 0, start) + 1
    indent = buffer[line_start:start]
    sibling = "\n" + indent + "{" if not indent.strip() else None
    return _closing_bracket(buffer, start, len(buffer), sibling)


def _closing_bracket(buffer: str, start: int, stop: int, sibling: str | None) -> int | None:
    """Index past the bracket that closes the value at `start` (depth counted outside strings; a JSON
    string never spans a line), or past the newline before `sibling`; None if neither is before `stop`."""
    depth, in_string, escaped = 0, False, False
    for index in range(start, stop):
        char = buffer[index]
        if char == "\n" and sibling and buffer.startswith(sibling, index):
            return index + 1
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char in '"\n':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth <= 0:
                return index + 1
    return None


def json_sale(builder: SaleBuilder, number: int, record: Any, stats: ParseStats) -> Sale:
    if not isinstance(record, dict):
        raise Reject("bad_json", "the record is not a JSON object")
    _check_storable(record)
    stats.saw("json")
    for name in ("timestamp", "branch", "items", "total", "payment_method"):
        if record.get(name) in (None, ""):
            raise Reject("missing_field", f"field {name!r} is missing")
    raw_items = record["items"]
    if not isinstance(raw_items, list):
        raise Reject("bad_item", "field 'items' is not a list")
    items = []
    for position, raw in enumerate(raw_items, 1):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise Reject("bad_item", f"item {position} has no product name")
        quantity = raw.get("quantity", 1)
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 < quantity <= MAX_QUANTITY:
            raise Reject("bad_quantity", f"item {position}'s quantity must be a whole number from 1 to "
                                         f"{MAX_QUANTITY}")
        name = raw["name"]
        if isinstance(raw.get("flavour"), str) and raw["flavour"].strip():
            name = f"{name} - {raw['flavour']}"
        size = raw.get("size")
        product = builder.product(size if isinstance(size, str) else "", name)
        price = builder.pence(_scalar_text(raw.get("price"), "price"), "price of a basket item")
        items.append(Item(product, quantity, price))
    customer = record.get("customer")
    customer_text = customer if isinstance(customer, str) else None
    extra = clean_extra(record, JSON_FIELDS, builder.allowed_extra_fields, customer_text, stats)
    network = record.get("card_network")
    return builder.sale(
        line_no=number, ts=_scalar_text(record["timestamp"], "timestamp"),
        branch=_scalar_text(record["branch"], "branch"), customer=customer_text, items=items,
        total=_scalar_text(record["total"], "total"), method=_scalar_text(record["payment_method"], "payment_method"),
        card_network=(card_network(network) if "," in network else network_word(network))
        if isinstance(network, str) else None, extra=extra or None)


def _check_storable(record: dict) -> None:
    """A NUL or a lone surrogate anywhere in the record (JSON's \\u escapes can spell both) rejects the
    record: PostgreSQL stores neither, and letting one through failed the whole file's load. The reason
    names a known field, never an unknown field's name (that is the producer's text)."""
    for key, value in record.items():
        if not storable(key):
            raise Reject("bad_text", f"{UNSTORABLE_REASON} in a field name; fix the export")
        if _holds_unstorable(value):
            where = f"field {key!r}" if key in JSON_FIELDS else "an unknown field"
            raise Reject("bad_text", f"{UNSTORABLE_REASON} in {where}; fix the export")


def _holds_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return not storable(value)
    if isinstance(value, dict):
        return any(not storable(key) or _holds_unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_unstorable(item) for item in value)
    return False


def _scalar_text(value: Any, what: str) -> str:
    """Strings and plain numbers as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    raise Reject("wrong_type", f"field {what!r} must be text or a number")
