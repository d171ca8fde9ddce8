"""Branch files in, validated sales and readable rejections out: `iter_records` picks the reader.

Input is read line by line: each line is decoded on its own (UTF-8, else Windows-1252, a BOM dropped
wherever it appears) and parsed as one CSV record, so an unclosed quote or a spreadsheet-encoded line
spoils only itself.

The parser is a module per job, none importing a module that imports it:
- `records`: what comes out (Sale, Item, Product, Rejection, Reject, ParseStats) and the limits;
- `values`: amounts, timestamps, text, card networks and basket shapes, as pure functions;
- `sale_builder`: the row-wise rules (SaleBuilder), with their memo tables and the customer pseudonym;
- `csv_records` (lines, both CSV dialects) and `json_records` (arrays and newline-delimited objects): the
  row-wise readers;
- `csv_vectorised`: the till's common CSV line a block at a time (pandas, Arrow-backed dtypes), every other line by
  `csv_records`; the same sales and rejections as the row-wise path.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Iterator

from services.transform.csv_records import iter_csv, iter_lines
from services.transform.csv_vectorised import SaleBlock, in_line_order, iter_csv_vectorised
from services.transform.json_records import iter_json, json_text
from services.transform.records import BOM, ParseStats, Rejection, Sale
from services.transform.sale_builder import SaleBuilder


def sniff_format(head: str) -> str:
    return "json" if head.lstrip().lstrip(BOM).lstrip()[:1] in ("[", "{") else "csv"


def iter_records(builder: SaleBuilder, chunks: Iterable[bytes], stats: ParseStats, *,
                 vectorised: bool = False) -> Iterator[Sale | Rejection]:
    """CSV or JSON, decided by the first non-blank character of the first chunk; records in line order."""
    records = iter_record_blocks(builder, chunks, stats, vectorised=vectorised)
    return in_line_order(records) if vectorised else records


def iter_record_blocks(builder: SaleBuilder, chunks: Iterable[bytes], stats: ParseStats, *,
                       vectorised: bool = True) -> Iterator[SaleBlock | Sale | Rejection]:
    """As iter_records, but a vectorised CSV's sales come as SaleBlock columns, each block before the records
    of the lines it did not take (what the load stages; its order within a file does not matter there)."""
    chunks = iter(chunks)
    first = next(chunks, b"")
    stream = itertools.chain((first,), chunks)
    if sniff_format(first[:4096].decode("utf-8", errors="replace")) == "json":
        return iter_json(builder, json_text(stream), stats)
    if vectorised:
        return iter_csv_vectorised(builder, stream, stats)
    return iter_csv(builder, iter_lines(stream), stats)
