"""Branch files in, validated sales and readable rejections out: `iter_records` picks the reader.

Input is read line by line: each line is decoded on its own (UTF-8, else Windows-1252, a BOM dropped
wherever it appears) and parsed as one CSV record, so an unclosed quote or a spreadsheet-encoded line
spoils only itself.

The parser is a module per job, none importing a module that imports it:
- `records`: what comes out (Sale, Item, Product, Rejection, Reject, ParseStats) and the limits;
- `values`: amounts, timestamps, text, card networks and basket shapes, as pure functions;
- `sale_builder`: the row-wise rules (SaleBuilder), with their memo tables and the customer pseudonym;
- `csv_records` (lines, both CSV dialects) and `json_records` (arrays and newline-delimited objects): the readers.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Iterator

from services.transform.csv_records import iter_csv, iter_lines
from services.transform.json_records import iter_json, json_text
from services.transform.records import BOM, ParseStats, Rejection, Sale
from services.transform.sale_builder import SaleBuilder


def sniff_format(head: str) -> str:
    return "json" if head.lstrip().lstrip(BOM).lstrip()[:1] in ("[", "{") else "csv"


def iter_records(builder: SaleBuilder, chunks: Iterable[bytes], stats: ParseStats) -> Iterator[Sale | Rejection]:
    """CSV or JSON, decided by the first non-blank character of the first chunk."""
    chunks = iter(chunks)
    first = next(chunks, b"")
    stream = itertools.chain((first,), chunks)
    if sniff_format(first[:4096].decode("utf-8", errors="replace")) == "json":
        return iter_json(builder, json_text(stream), stats)
    return iter_csv(builder, iter_lines(stream), stats)
