"""Branch till CSV, a block of lines at a time, with pandas on Arrow-backed dtypes (pd.ArrowDtype: the .str and
.list methods run Arrow's compute kernels over a whole column): the common till line is split, checked and
turned into staging columns without Python work per row, apart from the two keyed hashes (the sale's content
key; the customer pseudonym, once per distinct name).

Only lines the block can vouch for take this path: a line matching a strict shape (seven cells, no quotes
but around the basket, the method CASH or CARD in column 6, no NUL) whose every value passes the row-wise
rules, which are asked once per DISTINCT value (pd.factorize: timestamp hours, branches, customers, totals,
basket items) through the same SaleBuilder. Every other line (wrong field count, odd quoting, the lying-header
dialect, blank lines, headers, odd encodings, and any row a rule rejects) goes through
`csv_records.csv_line_record`, so each rejection reason and field-mess rule is the row-wise one. A line read
here gives the Sale the row-wise path gives (`SaleBlock.sales()`); tests/transform/test_vectorised_parse.py
holds the two equal.

pyarrow.compute is called directly only where pandas has no vectorised equivalent or costs much more (each
place says why): splitting a block's raw bytes, not yet known to be UTF-8, into lines; joining each sale's
basket slots into one string (a list column's per-row join); joining the content key's fields row by row.

Memory is bounded by the block: about BLOCK_BYTES of text and its columns at a time.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from services.common.crypto import KeyedHash
from services.transform.csv_records import OVERLONG, csv_line_record, decode_line, iter_lines
from services.transform.records import (MAX_ITEMS, MAX_LINE_BYTES, MAX_PRICE_PENCE, Item, ParseStats, Product, Reject,
                                        Rejection, Sale)
from services.transform.sale_builder import SaleBuilder
from services.transform.values import money_text

# ~11k till lines. A block's intermediate columns are some 15 times its text, and the allocator keeps what it
# freed: 8 MiB blocks took a worker loading the 200 MB file to 352 MB RSS, 2 MiB blocks cost ~0.2 us/sale more.
BLOCK_BYTES = 2 * 1024 * 1024
_CELL = '[^,"\\x00]*'
# The till's line: seven cells, only the basket quoted (or none when it holds no comma), a digit in the total.
_TILL_LINE = (f'^{_CELL},{_CELL},{_CELL},(?:"[^"\\x00]*"|{_CELL}),{_CELL}\\d{_CELL},(?:CASH|CARD),{_CELL}$')
# SaleBuilder._till_minute's shape: 16 ASCII characters, a colon at 13, a minute 00-59 after it.
_TILL_MINUTE = "^[\\x01-\\x7f]{13}:[0-5][0-9]$"
_EOL = re.compile(rb"\r\n?")
_HEX = np.array([list(f"{byte:02x}".encode()) for byte in range(256)], dtype=np.uint8)
TEXT = pd.ArrowDtype(pa.string())
# A block's sales and items as DataFrames: these columns, in this order, are what copy_columns stages.
SALE_COLUMNS = ("line_no", "occurred_epoch", "total_pence", "content_key", "branch_key", "branch_name",
                "customer_key", "payment_method", "file_of", "branch_code")
_NUMBERS = {"line_no", "occurred_epoch", "total_pence", "file_of", "branch_code", "item_no", "product", "pence"}
ITEM_COLUMNS = ("line_no", "item_no", "product", "pence", "file_of")


def text_series(values: pa.Array) -> pd.Series:
    """An Arrow string array as a pandas Series of pd.ArrowDtype (no copy)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(values), copy=False)


def text_list(values: pd.Series | pd.Index) -> list:
    """An Arrow-backed column's values as Python objects, None for null, converted by Arrow in one call
    (pandas' tolist on an ArrowDtype column iterates it element by element)."""
    return pa.array(values).to_pylist()


@dataclass
class BlockColumns:
    """A block's valid sales and their items as DataFrames, shared by the SaleBlock of each of its files.
    `sales` has SALE_COLUMNS (strings as pd.ArrowDtype, customer_key null without a customer), in line order;
    `items` has ITEM_COLUMNS, flat, each with its sale's line number and its product's index in `products`;
    file_of is the file (of a batch parsed together) of each row. branch_keys are the distinct branch keys,
    branch_code each sale's index into them."""
    sales: pd.DataFrame
    items: pd.DataFrame
    products: list[Product]
    branch_keys: list[str]
    staging: tuple[pa.Table, pa.Table] | None = None      # copy_columns' tables of the whole block, once made
    arrays: dict[tuple[str, str], np.ndarray | pa.Array] = field(default_factory=dict)

    def array(self, frame: str, name: str) -> np.ndarray | pa.Array:
        """A column of `sales` or `items` as numpy (numbers) or Arrow (strings), taken from its DataFrame once
        for all the block's files (a DataFrame column lookup is some 50 us)."""
        array = self.arrays.get((frame, name))
        if array is None:
            values = getattr(self, frame)[name]
            array = self.arrays[frame, name] = values.to_numpy() if name in _NUMBERS else pa.array(values)
        return array


@dataclass
class SaleBlock:
    """The valid sales of one file of a block, as columns: rows [start, end) of the block's sales and
    [item_start, item_end) of its items. What the staging COPY needs, without a Sale object per row."""
    columns: BlockColumns
    start: int
    end: int
    item_start: int
    item_end: int

    def __len__(self) -> int:
        return self.end - self.start

    def of_file(self, position: int) -> SaleBlock | None:
        """The sales of one file of the block (contiguous: files are parsed one after another)."""
        start, end = np.searchsorted(self.columns.array("sales", "file_of"), [position, position + 1])
        if start == end:
            return None
        item_start, item_end = np.searchsorted(self.columns.array("items", "file_of"), [position, position + 1])
        return SaleBlock(self.columns, int(start), int(end), int(item_start), int(item_end))

    def column(self, name: str) -> np.ndarray | pa.Array:
        """One of SALE_COLUMNS for this file's sales: numbers as numpy, strings as Arrow (no copy)."""
        return self.columns.array("sales", name)[self.start:self.end]

    def first_line_of_branch(self) -> list[tuple[int, str]]:
        """(first line, branch key) of each branch among the file's sales, latest first (popped in line order)."""
        codes, first = np.unique(self.column("branch_code"), return_index=True)
        keys, line_no = self.columns.branch_keys, self.column("line_no")
        return sorted(((int(line_no[at]), keys[code]) for code, at in zip(codes.tolist(), first.tolist())),
                      reverse=True)

    def sales(self) -> list[Sale]:
        """The file's sales as the row-wise path's Sale objects (the same values, item by item)."""
        items = slice(self.item_start, self.item_end)
        line_no, item_line_no = self.column("line_no"), self.columns.array("items", "line_no")[items]
        starts = np.searchsorted(item_line_no, line_no, side="left").tolist()
        ends = np.searchsorted(item_line_no, line_no, side="right").tolist()
        products = self.columns.products
        pence = self.columns.array("items", "pence")[items].tolist()
        product_of = self.columns.array("items", "product")[items].tolist()
        rows = zip(line_no.tolist(), self.column("occurred_epoch").tolist(),
                   *(self.column(name).to_pylist() for name in ("branch_key", "branch_name", "customer_key",
                                                                "content_key")),
                   self.column("total_pence").tolist(), self.column("payment_method").to_pylist(), starts, ends)
        return [Sale(line, epoch, key, name, customer, content,
                     [Item(products[product_of[i]], 1, pence[i]) for i in range(start, end)], total, payment, None)
                for line, epoch, key, name, customer, content, total, payment, start, end in rows]


def iter_csv_vectorised(builder: SaleBuilder, chunks: Iterable[bytes], stats: ParseStats, *,
                        block_bytes: int | None = None) -> Iterator[SaleBlock | Sale | Rejection]:
    """Per block: its SaleBlock (when it has vectorised sales), then the other lines' records in line order."""
    for first_line, lines, special in _line_blocks(chunks, block_bytes or BLOCK_BYTES):
        [(block, others)] = _parse_block([builder], [stats], lines, np.arange(first_line, first_line + len(lines)),
                                         np.zeros(len(lines), dtype=np.int64), special)
        if block is not None:
            yield block
        yield from others
        _release_after(lines.nbytes)


def parse_csv_files(files: list[tuple[SaleBuilder, bytes, ParseStats]]) -> list[list[SaleBlock | Sale | Rejection]]:
    """Several whole CSV files (a load batch's small uploads) as blocks of about BLOCK_BYTES, so the fixed
    cost of each Arrow call is paid once per block rather than once per day file; per file, what
    iter_csv_vectorised yields. The builders must share their keys (one secret); each keeps its own branch
    rules and clock."""
    if any(not b.customer_hash.same_key(files[0][0].customer_hash) or
           not b.identity_hash.same_key(files[0][0].identity_hash) for b, _data, _stats in files[1:]):
        return [list(iter_csv_vectorised(b, [data], stats)) for b, data, stats in files]
    parsed, group, size = [], [], 0
    for file in files:
        if group and size + len(file[1]) > BLOCK_BYTES:
            parsed += _parse_files_together(group)
            group, size = [], 0
        group.append(file)
        size += len(file[1])
    return parsed + (_parse_files_together(group) if group else [])


def _parse_files_together(files: list[tuple[SaleBuilder, bytes, ParseStats]]) -> list[list]:
    arrays, line_no, file_of, special, offset = [], [], [], {}, 0
    for position, (_builder, data, _stats) in enumerate(files):
        lines, own = _split_block(data) if data else (pa.array([], pa.string()), {})
        special.update((offset + index, text) for index, text in own.items())
        arrays.append(lines)
        line_no.append(np.arange(1, len(lines) + 1))
        file_of.append(np.full(len(lines), position))
        offset += len(lines)
    parsed = _parse_block([b for b, _d, _s in files], [s for _b, _d, s in files],
                          pa.concat_arrays(arrays), np.concatenate(line_no), np.concatenate(file_of), special)
    _release_after(sum(len(data) for _b, data, _s in files))
    return [([block] if block is not None else []) + others for block, others in parsed]


def _release_after(block_bytes: int) -> None:
    """A large block's columns go back to the system rather than stay with the allocator (the worker's peak
    memory); after a small one, the call (about a millisecond) would cost more than it returns."""
    if block_bytes >= BLOCK_BYTES // 2:
        pa.default_memory_pool().release_unused()


def in_line_order(records: Iterable[SaleBlock | Sale | Rejection]) -> Iterator[Sale | Rejection]:
    """The row-wise stream: each block's sales merged with the records that follow it, by line number."""
    pending: list[Sale] = []
    for record in records:
        if record.__class__ is SaleBlock:
            pending.reverse()
            yield from pending
            pending = record.sales()
            pending.reverse()
            continue
        while pending and pending[-1].line_no < record.line_no:
            yield pending.pop()
        yield record
    pending.reverse()
    yield from pending


# -- lines ------------------------------------------------------------------------------------------------------
def _line_blocks(chunks: Iterable[bytes], block_bytes: int) -> Iterator[tuple[int, pa.Array, dict[int, object]]]:
    """(number of the first line, the lines as an Arrow string array, {index: text or OVERLONG} for lines
    that could not go into the array as read) per block of at most block_bytes. Lines end at LF, CRLF or a
    bare CR, as in csv_records.iter_lines. A block is cut after its last LF, or after a CR that is not the
    buffer's last byte (so a CRLF is never cut in two). A block's worth of bytes without a line end hands
    the rest of the file to the row-wise reader, which skips an overlong line without holding it."""
    buffer = bytearray()
    number = 0
    source = iter(chunks)
    for chunk in source:
        buffer += chunk
        while len(buffer) >= block_bytes:
            # a CR is cut after only when the byte after it is in the LF search too: a CRLF stays whole
            cut = max(buffer.rfind(b"\n", 0, block_bytes), buffer.rfind(b"\r", 0, block_bytes - 1))
            if cut < 0:
                yield from _row_wise_rest(number, bytes(buffer), source)
                return
            lines, special = _split_block(bytes(buffer[:cut + 1]))
            del buffer[:cut + 1]
            yield number + 1, lines, special
            number += len(lines)
    if buffer:
        lines, special = _split_block(bytes(buffer))
        yield number + 1, lines, special


def _row_wise_rest(number: int, head: bytes, rest: Iterator[bytes]) -> Iterator[tuple[int, pa.Array, dict]]:
    """The rest of a file with an endless line, as csv_records.iter_lines reads it, in batches of lines."""
    batch: dict[int, object] = {}
    first = number + 1
    for line_no, text in iter_lines(_chained(head, rest)):
        batch[number + line_no - first] = text
        if len(batch) >= 10_000:
            yield first, pa.nulls(len(batch), pa.string()), batch
            first, batch = number + line_no + 1, {}
    if batch:
        yield first, pa.nulls(len(batch), pa.string()), batch


def _chained(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from rest


def _split_block(block: bytes) -> tuple[pa.Array, dict[int, object]]:
    """A block's lines (the trailing empty piece after its last line end dropped). Valid UTF-8 is split and
    checked by Arrow; a block holding another encoding or an overlong line is decoded line by line as
    csv_records does, and its lines handed over as they are."""
    if b"\r" in block:
        block = _EOL.sub(b"\n", block)
    if block.endswith(b"\n"):
        block = block[:-1]
    pieces = pc.split_pattern(pa.array([block], pa.binary()), "\n")[0].values
    too_long = len(block) > MAX_LINE_BYTES and pc.any(pc.greater(pc.binary_length(pieces), MAX_LINE_BYTES)).as_py()
    try:
        if too_long:
            raise pa.ArrowInvalid("an overlong line")
        lines = pieces.cast(pa.string())
    except pa.ArrowInvalid:
        texts = [OVERLONG if len(raw) > MAX_LINE_BYTES else decode_line(raw) for raw in block.split(b"\n")]
        return pa.nulls(len(texts), pa.string()), dict(enumerate(texts))
    if b"\xef\xbb\xbf" in block:
        lines = pc.utf8_ltrim(lines, "\ufeff")
    return lines, {}


# -- a block ------------------------------------------------------------------------------------------------------
def _parse_block(builders: list[SaleBuilder], stats: list[ParseStats], line_array: pa.Array, line_no: np.ndarray,
                 file_of: np.ndarray, special: dict[int, object]) -> list[tuple[SaleBlock | None, list]]:
    """Per file of the block (lines of one file contiguous, in line order): its SaleBlock and the records of
    the lines it did not take."""
    lines = text_series(line_array)
    rows = np.flatnonzero(lines.str.match(_TILL_LINE, na=False).to_numpy(dtype=bool))
    accepted = np.zeros(0, dtype=np.int64)
    block = None
    if len(rows):
        block, accepted = _vectorised_sales(builders, lines.iloc[rows].reset_index(drop=True), line_no[rows],
                                            file_of[rows])
    others = np.ones(len(lines), dtype=bool)
    others[rows[accepted]] = False
    other_rows = np.flatnonzero(others)
    results = []
    for position, (builder, file_stats) in enumerate(zip(builders, stats)):
        own = block if len(builders) == 1 else block.of_file(position) if block is not None else None
        if own is not None:
            file_stats.saw("a", len(own))      # a strict line's basket is dialect A (csv_records decides so)
        mine = other_rows[file_of[other_rows] == position] if len(builders) > 1 else other_rows
        results.append((own, _row_wise(builder, file_stats, line_array, line_no, special, mine, own)))
    return results


def _row_wise(builder: SaleBuilder, stats: ParseStats, lines: pa.Array, line_no: np.ndarray,
              special: dict[int, object], indices: np.ndarray, block: SaleBlock | None) -> list[Sale | Rejection]:
    """The lines the block did not take, by the row-wise rules, in line order. A branch the row-wise path
    would have accepted on an earlier line is known (shown in rejected rows) before each line, as there."""
    known_from = block.first_line_of_branch() if block is not None else []
    records = []
    for index in indices.tolist():
        number = int(line_no[index])
        while known_from and known_from[-1][0] < number:
            builder.known_branch_keys.add(known_from.pop()[1])
        line = special[index] if index in special else lines[index].as_py()
        record = csv_line_record(builder, number, line, stats)
        if record is not None:
            records.append(record)
    builder.known_branch_keys.update(key for _line, key in known_from)
    return records


def _distinct(values: pd.Series, rule) -> tuple[np.ndarray, list]:
    """Each row's index into the distinct values, and rule(value) once per distinct value."""
    codes, uniques = values.factorize()
    return codes, [rule(value) for value in text_list(uniques)]


def _accepted(verdict):
    return None if verdict.__class__ is Reject else verdict


def _verdict(rule, *args):
    try:
        return rule(*args)
    except Reject:
        return None


def _vectorised_sales(builders: list[SaleBuilder], lines: pd.Series, line_no: np.ndarray,
                      file_of: np.ndarray) -> tuple[SaleBlock | None, np.ndarray]:
    """The sales of the candidate lines whose every value the row-wise rules accept, and the positions of
    those lines among the candidates. Value rules that do not depend on the file are asked of the first
    builder; the branch of each file's own, and each file's clock bounds its timestamps."""
    reference = builders[0]
    # [time, branch, customer, basket, total, method, card]: the last three cells from the right, the first
    # four from the left of what is before them (the strict shape leaves commas only in a quoted basket)
    tail = lines.str.rsplit(",", n=3)
    tail_cells = tail.list
    head_cells = tail_cells[0].str.split(",", n=3).list
    basket = head_cells[3].str.strip('"')         # the strict shape: quotes only around the whole basket
    ok = np.ones(len(lines), dtype=bool)

    latest = np.array([b.latest_epoch for b in builders], dtype=np.int64)[file_of]
    epoch, ts_ok = _epochs(reference, head_cells[0], latest)
    ok &= ts_ok

    branch_key_of, branch_name_of, branch_ok = _branches(builders, head_cells[1], file_of)
    ok &= branch_ok

    customer_of, customers, customer_ok = _pseudonyms(reference, head_cells[2])
    ok &= customer_ok[customer_of]

    total_of, totals = _distinct(tail_cells[1], lambda raw: _verdict(reference.pence, raw, "total"))
    total = np.array([t or 0 for t in totals], dtype=np.int64)[total_of]
    ok &= np.array([t is not None for t in totals])[total_of]

    # the basket exploded into its items, each row indexed by its sale's position
    parts = basket.str.split(",")
    sizes = parts.list.len().to_numpy(dtype=np.int64)
    item_of, items = _distinct(parts.explode(), lambda raw: _verdict(reference.item_a, raw))
    item_ok = np.array([i is not None and 0 <= i[1] <= MAX_PRICE_PENCE for i in items])[item_of]
    item_pence = np.array([i[1] if i else 0 for i in items], dtype=np.int64)[item_of]
    starts = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    ok &= (sizes <= MAX_ITEMS) & (np.add.reduceat(item_ok.astype(np.int64), starts[:-1]) == sizes)
    ok &= np.abs(np.add.reduceat(item_pence, starts[:-1]) - total) <= 1

    if not ok.any():
        return None, np.zeros(0, dtype=np.int64)
    take = np.flatnonzero(ok)
    item_keep = np.repeat(ok, sizes)
    kept_items = item_of[item_keep]
    kept_sizes = sizes[take]
    item_no = np.arange(len(kept_items)) - np.repeat(np.cumsum(kept_sizes) - kept_sizes, kept_sizes) + 1

    # Distinct products of the block's items (the memo's Product objects, by identity)
    products: list[Product] = []
    product_index: dict[int, int] = {}
    item_product_of = np.zeros(len(items), dtype=np.int64)
    for position, item in enumerate(items):
        if item is not None:
            item_product_of[position] = product_index.setdefault(id(item[0]), len(products))
            if item_product_of[position] == len(products):
                products.append(item[0])
    branch_key = branch_key_of.take(take).reset_index(drop=True)
    customer_key = customers.take(customer_of[take]).reset_index(drop=True)
    payment = tail_cells[2].take(take).reset_index(drop=True)
    identity = _basket_identities(items, kept_items, kept_sizes)
    epoch, total = epoch[take], total[take]
    # The content key's message, fields joined by \x1f in one Arrow call: pandas' str.cat(others) joins through
    # object arrays, and a chain of + makes (and copies) a column per piece (~10% of a block's time)
    message = text_series(pc.binary_join_element_wise(
        *(pa.array(column) for column in (branch_key, _numbers_as_text(epoch), customer_key.fillna(""), identity,
                                          _numbers_as_text(total), payment)), "\x1f"))
    branch_code, branch_keys = branch_key.factorize()
    numbers = {("sales", "line_no"): line_no[take], ("sales", "occurred_epoch"): epoch, ("sales", "total_pence"): total,
               ("sales", "file_of"): file_of[take], ("sales", "branch_code"): branch_code,
               ("items", "line_no"): np.repeat(line_no[take], kept_sizes), ("items", "item_no"): item_no,
               ("items", "product"): item_product_of[kept_items], ("items", "pence"): item_pence[item_keep],
               ("items", "file_of"): np.repeat(file_of[take], kept_sizes)}
    sales = pd.DataFrame({   # from the columns' arrays, not Series: half the cost (no index to align)
        **{name: numbers["sales", name] for name in SALE_COLUMNS if ("sales", name) in numbers},
        "content_key": _hex_digests(reference.identity_hash,
                                    text_list(message.astype(pd.ArrowDtype(pa.binary())))).array,
        "branch_key": branch_key.array, "branch_name": branch_name_of.array.take(take),
        "customer_key": customer_key.array, "payment_method": payment.array}, copy=False)
    items_frame = pd.DataFrame({name: numbers["items", name] for name in ITEM_COLUMNS}, copy=False)
    # the number columns the block's files read again (of_file, first_line_of_branch, sales()), kept as built
    columns = BlockColumns(sales, items_frame, products, text_list(branch_keys), arrays=numbers)
    return SaleBlock(columns, 0, len(sales), 0, len(items_frame)), take


def _numbers_as_text(values: np.ndarray) -> pd.Series:
    return pd.Series(pd.array(values, dtype="int64[pyarrow]").astype(TEXT), copy=False)


def _branches(builders: list[SaleBuilder], cells: pd.Series,
              file_of: np.ndarray) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Each row's branch key and name (null where rejected) and whether its file's builder accepts its branch
    cell; branch_verdict is asked once per distinct (file, cell)."""
    cell_of, texts = cells.factorize()
    texts = text_list(texts)
    pair_of, pairs = pd.factorize(file_of * len(texts) + cell_of)
    verdicts = [_accepted(builders[pair // len(texts)].branch_verdict(texts[pair % len(texts)]))
                for pair in pairs.tolist()]
    keys = pd.Series(pd.array([v[0] if v else None for v in verdicts], dtype=TEXT).take(pair_of), copy=False)
    names = pd.Series(pd.array([v[1] if v else None for v in verdicts], dtype=TEXT).take(pair_of), copy=False)
    return keys, names, keys.notna().to_numpy(dtype=bool)


def _pseudonyms(builder: SaleBuilder, names: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    """Each row's index into the distinct customer names; per distinct name SaleBuilder.customer's pseudonym
    (null for an empty name: no customer) and whether that rule accepts the name. The rule's input is taken
    from the builder and hashed once per distinct name."""
    name_of, distinct = names.factorize()
    inputs = [builder.pseudonym_input(name) for name in text_list(distinct)]
    accepted = np.array([text.__class__ is str for text in inputs], dtype=bool)
    try:
        messages = [text.encode() if text.__class__ is str else b"" for text in inputs]
    except UnicodeEncodeError:                      # a lone surrogate: every name of the block goes row-wise
        messages, accepted[:] = [b""] * len(inputs), False
    present = np.array([bool(message) for message in messages], dtype=bool)
    pseudonyms = _hex_digests(builder.customer_hash, messages).where(present)
    return name_of, pseudonyms, accepted


def _epochs(builder: SaleBuilder, stamps: pd.Series, latest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each timestamp's epoch seconds and whether SaleBuilder.timestamp accepts it. The till's own minutes
    ('DD/MM/YYYY HH:MM', the shape its _till_minute takes) from their hour's start, one rule call per
    distinct hour; any other shape one call per distinct value. Each row's own file's clock (latest) bounds
    it: where the builder asked has another clock, its verdict differs only by "in the future", and a row it
    calls future is past latest too (it goes row-wise, where its own builder decides)."""
    epoch = np.zeros(len(stamps), dtype=np.int64)
    ok = np.zeros(len(stamps), dtype=bool)
    till = stamps.str.match(_TILL_MINUTE, na=False).to_numpy(dtype=bool)
    rows = np.flatnonzero(till)
    if len(rows):
        minutes = stamps[till]
        hour_of, hours = _distinct(minutes.str.slice(0, 13), lambda hour: _verdict(builder.till_hour, hour))
        minute = minutes.str.slice(14, 16).astype("int64[pyarrow]").to_numpy(dtype=np.int64)
        epoch[rows] = np.array([h[1] if h else 0 for h in hours], dtype=np.int64)[hour_of] + 60 * minute
        ok[rows] = np.array([h is not None for h in hours])[hour_of] & (epoch[rows] <= latest[rows])
    rows = np.flatnonzero(~till)
    if len(rows):
        value_of, values = _distinct(stamps[~till], lambda raw: _verdict(builder.timestamp, raw))
        epoch[rows] = np.array([t[1] if t else 0 for t in values], dtype=np.int64)[value_of]
        ok[rows] = np.array([t is not None for t in values])[value_of] & (epoch[rows] <= latest[rows])
    return epoch, ok


def _basket_identities(items: list, item_of: np.ndarray, sizes: np.ndarray) -> pd.Series:
    """values.identity_of_items for every sale at once: its items' (product key, price) slots counted and
    sorted, as 'key@pence x count' joined by ';'."""
    slots = sorted({(item[0].product_key, item[1]) for item in items if item is not None})
    rank = {slot: position for position, slot in enumerate(slots)}
    slot_of = np.array([rank[(i[0].product_key, i[1])] if i is not None else 0 for i in items], dtype=np.int64)
    item_slot = slot_of[item_of]
    sale_of = np.repeat(np.arange(len(sizes)), sizes)
    # runs of equal (sale, slot) after a sort by both: numpy's lexsort on the int columns (a pandas groupby of
    # two keys would sort the same way with more overhead per block)
    order = np.lexsort((item_slot, sale_of))
    sale_sorted, slot_sorted = sale_of[order], item_slot[order]
    new_run = np.ones(len(order), dtype=bool)
    new_run[1:] = (sale_sorted[1:] != sale_sorted[:-1]) | (slot_sorted[1:] != slot_sorted[:-1])
    run_start = np.flatnonzero(new_run)
    run_count = np.diff(np.append(run_start, len(order)))
    slot_texts = pd.Series([f"{key}@{pence}" for key, pence in slots], dtype=TEXT)
    runs = slot_texts.take(slot_sorted[run_start]).reset_index(drop=True) + "x" + _numbers_as_text(run_count)
    runs_per_sale = np.bincount(sale_sorted[run_start], minlength=len(sizes))
    offsets = np.zeros(len(sizes) + 1, dtype=np.int32)
    np.cumsum(runs_per_sale, out=offsets[1:])
    # Each sale's runs joined by ';': pyarrow directly, as pandas (3.x) has no join of a list column's rows
    # (.str refuses list dtypes; groupby(sale).agg(";".join) would be a Python call per sale)
    runs_array = pa.array(runs, pa.string())
    return text_series(pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), runs_array), ";"))


def _hex_digests(keyed: KeyedHash, messages: list[bytes]) -> pd.Series:
    """KeyedHash.hex of every message (HMAC-SHA256 cut to 16 bytes, as 32 hex digits), hexed by numpy."""
    raw = keyed.digests16(messages)
    hexed = _HEX[np.frombuffer(raw, dtype=np.uint8)].reshape(-1, 32)
    # the 32-byte cells to Arrow strings without a Python object each: a fixed-width binary view, cast
    return text_series(pa.array(hexed.view("S32").ravel(), pa.binary(32)).cast(pa.string()))


# -- staging ------------------------------------------------------------------------------------------------------
def copy_columns(block: SaleBlock, upload_id: int, money: dict[int, str]) -> tuple[pa.Table, pa.Table]:
    """The file's stage_sale and stage_item rows, column for column as load._Staging writes them for Sales
    (None as NULL; amounts as load writes them, through its memo of amount texts): the block's tables, made
    once for all its files, sliced, with the upload's id in front."""
    columns = block.columns
    if columns.staging is None:
        columns.staging = _staging_tables(columns, money)
    sales, items = columns.staging
    sales = sales.slice(block.start, len(block))
    items = items.slice(block.item_start, block.item_end - block.item_start)
    return (sales.add_column(0, "upload_id", pa.array(np.full(len(sales), upload_id, dtype=np.int64))),
            items.add_column(0, "upload_id", pa.array(np.full(len(items), upload_id, dtype=np.int64))))


def _staging_tables(columns: BlockColumns, money: dict[int, str]) -> tuple[pa.Table, pa.Table]:
    """Arrow tables, which Arrow's CSV writer turns into COPY text (pa.Table.from_pandas costs ~1 ms a call in
    its metadata: the columns are taken one by one instead, without a copy for the Arrow-backed ones)."""
    sales, items = columns.sales, columns.items
    n = len(sales)
    sale_table = pa.table({
        "line_no": pa.array(sales["line_no"].to_numpy()), "content_key": pa.array(sales["content_key"]),
        "branch_key": pa.array(sales["branch_key"]), "branch_name": pa.array(sales["branch_name"]),
        "occurred_epoch": pa.array(sales["occurred_epoch"].to_numpy()),
        "total": _money_texts(sales["total_pence"].to_numpy(), money),
        "payment_method": pa.array(sales["payment_method"]), "card_network": pa.nulls(n, pa.string()),
        "customer_key": pa.array(sales["customer_key"]), "extra": pa.nulls(n, pa.string())})
    products = columns.products
    product_of = pa.array(items["product"].to_numpy())
    item_table = pa.table({
        "line_no": pa.array(items["line_no"].to_numpy()), "item_no": pa.array(items["item_no"].to_numpy()),
        "product_key": pa.array([p.product_key or None for p in products], pa.string()).take(product_of),
        "name": pa.array([p.name or None for p in products], pa.string()).take(product_of),
        "size": pa.array([p.size or None for p in products], pa.string()).take(product_of),
        "flavour": pa.array([p.flavour or None for p in products], pa.string()).take(product_of),
        "quantity": pa.array(np.ones(len(items), dtype=np.int64)),
        "unit_price": _money_texts(items["pence"].to_numpy(), money)})
    return sale_table, item_table


def _money_texts(pence: np.ndarray, money: dict[int, str]) -> pa.Array:
    index, distinct = pd.factorize(pence)
    texts = []
    for value in distinct.tolist():
        text = money.get(value)
        if text is None:
            text = money[value] = money_text(value)
        texts.append(text)
    return pa.array(texts, pa.string()).take(pa.array(index))
