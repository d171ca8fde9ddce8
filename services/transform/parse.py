"""Branch files in, validated sales and readable rejections out.

The csv module tokenises (it knows each record's line number and survives a truncated quote, which
pandas' reader does not); values are parsed through per-file memo tables because a day file repeats
the same ~70 basket items, ~700 minutes and a few dozen totals thousands of times. The customer name
is turned into its keyed pseudonym here and dropped: nothing downstream ever sees it.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator
from zoneinfo import ZoneInfo

from services.common.crypto import CUSTOMER_PSEUDONYM_KEY, SALE_IDENTITY_KEY, derive_key, keyed_hex
from services.common.naming import branch_key, collapse_spaces

UK = ZoneInfo("Europe/London")
METHODS = {"CASH", "CARD"}
SIZES = {"regular": "Regular", "large": "Large", "small": "Small"}
EXPECTED_FIELDS = 7
MAX_ITEMS = 100
MAX_QUANTITY = 1000
MAX_PRICE_PENCE = 100_000
OLDEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
TIMESTAMP_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
                     "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")
# JSON fields we understand; anything else is kept (pseudonymised where it looks personal).
JSON_FIELDS = {"timestamp", "branch", "customer", "items", "total", "payment_method", "card_number", "card_network"}
PERSONAL_FIELD = re.compile(r"name|mail|phone|addr|card|iban|account|birth|dob|postcode|zip", re.I)

_MONEY = re.compile(r"^£?\s*(\d{1,7})(?:\.(\d{1,2}))?$")
_ITEM_A = re.compile(r"^(?P<body>.+?)\s*-\s*(?P<price>£?\s*[0-9][0-9.]*)$")
_TRAILING_DIGITS = re.compile(r"\d+$")
_CARD_NETWORK = re.compile(r"^[a-z][a-z ]{1,30}$")
_LONG_NUMBER = re.compile(r"\d[\d .,E+\-]{10,}\d|\d\.\d+E\+\d+", re.I)
_FORMULA_START = ("=", "+", "@")


@dataclass(slots=True, frozen=True)
class Product:
    product_key: str
    name: str
    size: str | None
    flavour: str | None


@dataclass(slots=True)
class Item:
    product: Product
    quantity: int
    unit_pence: int


@dataclass(slots=True)
class Sale:
    line_no: int
    occurred_epoch: int            # seconds since 1970 UTC
    branch_key: str
    branch_name: str
    customer_key: str | None       # keyed pseudonym, 32 hex digits
    content_key: str               # identity of the sale's content, before the repeat number
    items: list[Item]
    total_pence: int
    payment_method: str
    card_network: str | None
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class Rejection:
    line_no: int
    code: str
    reason: str
    masked_row: str


class Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class FileUnreadable(Exception):
    """The file as a whole is not a branch file; the message is shown to the branch manager."""


@dataclass
class ParseStats:
    dialects: dict[str, int] = field(default_factory=dict)
    header_lines: int = 0
    blank_lines: int = 0
    extra_fields: dict[str, int] = field(default_factory=dict)
    pseudonymised_fields: set[str] = field(default_factory=set)

    def dialect(self) -> str | None:
        if not self.dialects:
            return None
        return max(self.dialects, key=self.dialects.__getitem__) if len(self.dialects) == 1 else "mixed"


_DMY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?")
_YMD = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?")


def _fast_timestamp(text: str) -> datetime | None:
    """The two till formats without strptime's overhead; anything else falls back to it."""
    match = _DMY.fullmatch(text)
    try:
        if match:
            day, month, year, hour, minute, second = match.groups()
            return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
        match = _YMD.fullmatch(text)
        if match:
            year, month, day, hour, minute, second = match.groups()
            return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        return None   # 31/02: let the slow path produce the reason
    return None


def money_text(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}"


def fold(value: str) -> str:
    return collapse_spaces(unicodedata.normalize("NFKC", value)).casefold()


MEMO_LIMIT = 100_000


def _remember(memo: dict, key, value):
    """Memo tables stay bounded on huge files of unique values (a month of distinct customers)."""
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = value
    return value


def _memoised(memo: dict, key, compute):
    """The memo's value for key (computing it once); a remembered rejection is raised again."""
    found = memo.get(key)
    if found is None:
        found = _remember(memo, key, compute())
    if isinstance(found, Reject):
        raise found
    return found


class SaleBuilder:
    """Validates one sale's raw values. Memo tables make repeated values nearly free."""

    def __init__(self, secret: str, *, expected_branch_key: str | None, now: datetime | None = None) -> None:
        self._customer_key = derive_key(secret, CUSTOMER_PSEUDONYM_KEY)
        self._identity_key = derive_key(secret, SALE_IDENTITY_KEY)
        self.expected_branch_key = expected_branch_key
        self.latest = (now or datetime.now(timezone.utc)) + timedelta(days=1)
        self._times: dict[str, tuple[datetime, int] | Reject] = {}
        self._money: dict[str, int | None] = {}
        self._products: dict[tuple[str, str], Product | Reject] = {}
        self._items_a: dict[str, tuple[Product, int] | Reject] = {}
        self._branches: dict[str, tuple[str, str] | Reject] = {}
        self._customers: dict[str, str] = {}

    # -- values -------------------------------------------------------------------------------
    def timestamp(self, raw: str) -> tuple[datetime, int]:
        """(moment in UTC, its identity text); the memo holds one entry per distinct minute or second."""
        return _memoised(self._times, raw, lambda: self._parse_timestamp(raw))

    def _parse_timestamp(self, raw: str) -> tuple[datetime, int] | Reject:
        text = raw.strip()
        parsed = _fast_timestamp(text)
        for fmt in () if parsed else TIMESTAMP_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if parsed is None:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return Reject("bad_timestamp", f"timestamp {text[:40]!r} is not a date and time "
                                               "(expected DD/MM/YYYY HH:MM or YYYY-MM-DD HH:MM:SS)")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UK)   # branch files are UK local time
        moment = parsed.astimezone(timezone.utc)
        if moment > self.latest:
            return Reject("future_timestamp", f"timestamp {text!r} is in the future")
        if moment < OLDEST:
            return Reject("old_timestamp", f"timestamp {text!r} is before the year 2000")
        return moment, int(moment.timestamp())

    def pence(self, raw: str, what: str) -> int:
        if raw not in self._money:
            match = _MONEY.match(raw.strip())
            value = _remember(self._money, raw, int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
                              if match else None)
        else:
            value = self._money[raw]
        if value is None:
            shown = raw.strip()[:20]
            raise Reject("bad_number", f"{what} {shown!r} is not an amount like 2.45")
        return value

    def branch(self, raw: str) -> tuple[str, str]:
        return _memoised(self._branches, raw, lambda: self._parse_branch(raw))

    def _parse_branch(self, raw: str) -> tuple[str, str] | Reject:
        name = collapse_spaces(raw)
        key = branch_key(name)
        if not key:
            return Reject("missing_branch", "branch name is empty")
        if name.startswith(_FORMULA_START):
            return Reject("formula_cell", "branch name starts with a spreadsheet formula character")
        if self.expected_branch_key is not None and key != self.expected_branch_key:
            return Reject("wrong_branch", f"row is for branch {name[:60]!r}, but this upload's token belongs "
                                          "to another branch")
        return key, name

    def product(self, size_raw: str, name_raw: str) -> Product:
        return _memoised(self._products, (size_raw, name_raw), lambda: self._parse_product(size_raw, name_raw))

    @staticmethod
    def _parse_product(size_raw: str, name_raw: str) -> Product | Reject:
        name = collapse_spaces(name_raw)
        size_text = collapse_spaces(size_raw)
        if not name:
            return Reject("bad_item", "a basket item has no product name")
        if name.startswith(_FORMULA_START):
            return Reject("formula_cell", "a product name starts with a spreadsheet formula character")
        size = None
        if size_text:
            size = SIZES.get(size_text.casefold())
            if size is None:
                return Reject("bad_item", f"size {size_text[:20]!r} is not Regular or Large")
        flavour = None
        if " - " in name:
            name, _, flavour = (part.strip() for part in name.partition(" - "))
            flavour = flavour or None
        key = f"{fold(name)}|{(size or '').casefold()}|{fold(flavour) if flavour else ''}"
        return Product(key, name, size, flavour)

    def item_a(self, text: str) -> tuple[Product, int]:
        """'Large Flavoured latte - Hazelnut - 2.85' -> (product, pence)."""
        return _memoised(self._items_a, text, lambda: self._parse_item_a(text))

    def _parse_item_a(self, text: str) -> tuple[Product, int] | Reject:
        stripped = text.strip()
        match = _ITEM_A.match(stripped)
        if not match:
            return Reject("bad_item", f"basket item {stripped[:60]!r} is not 'Size Product - price'")
        body = match.group("body").strip()
        size, _, rest = body.partition(" ")
        if size.casefold() not in SIZES or not rest:
            size, rest = "", body
        try:
            price = self.pence(match.group("price"), "price")
            return self.product(size, rest), price
        except Reject as exc:
            return exc

    def customer(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        found = self._customers.get(raw)
        if found is None:
            folded = fold(raw)
            if not folded:
                return None
            found = _remember(self._customers, raw, keyed_hex(self._customer_key, folded))
        return found

    # -- the sale -------------------------------------------------------------------------------
    def sale(self, *, line_no: int, ts: str, branch: str, customer: str | None, items: list[Item],
             total: str | int, method: str, card_network: str | None,
             extra: dict[str, Any] | None = None) -> Sale:
        _moment, epoch = self.timestamp(ts)
        key, name = self.branch(branch)
        if not items:
            raise Reject("empty_basket", "the basket is empty")
        if len(items) > MAX_ITEMS:
            raise Reject("bad_item", f"the basket has {len(items)} items (at most {MAX_ITEMS})")
        total_pence = total if isinstance(total, int) else self.pence(total, "total")
        basket = 0
        for item in items:
            if not 0 <= item.unit_pence <= MAX_PRICE_PENCE:   # 0.00 is real: a free babyccino
                raise Reject("bad_price", f"price {money_text(item.unit_pence)} of {item.product.name!r} "
                                          "is over 1000.00")
            basket += item.unit_pence * item.quantity
        if abs(basket - total_pence) > 1:
            raise Reject("total_mismatch", f"total {money_text(total_pence)} does not match the basket, "
                                           f"which adds up to {money_text(basket)}")
        payment = method.strip().upper()
        if payment not in METHODS:
            raise Reject("bad_payment", f"payment method {method.strip()[:20]!r} is not CASH or CARD")
        customer_key = self.customer(customer)
        content_key = keyed_hex(self._identity_key, "\x1f".join((
            key, str(epoch), customer_key or "", _basket_identity(items), str(total_pence), payment)))
        return Sale(line_no, epoch, key, name, customer_key, content_key, items, total_pence, payment,
                    card_network, extra)


def _basket_identity(items: list[Item]) -> str:
    counts: dict[tuple[str, int], int] = {}
    for item in items:
        slot = (item.product.product_key, item.unit_pence)
        counts[slot] = counts.get(slot, 0) + item.quantity
    return ";".join(f"{k}@{p}x{q}" for (k, p), q in sorted(counts.items()))


# ------------------------------------------------------------------------------------------------
# Reading bytes as text
# ------------------------------------------------------------------------------------------------
class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def detect_encoding(chunks: Iterable[bytes]) -> str:
    """UTF-8 (with or without BOM) when every byte decodes as such, else Windows-1252, which is what
    a spreadsheet on a till PC writes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for chunk in chunks:
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp1252"


def text_stream(chunks: Iterable[bytes], encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BufferedReader(_ChunkReader(chunks), 1 << 16), encoding=encoding,
                            errors="replace", newline="")


# ------------------------------------------------------------------------------------------------
# Dialects
# ------------------------------------------------------------------------------------------------
def mask_fields(fields: list[str]) -> str:
    """A rejected row as the manager can be shown it: no customer name, no card number."""
    if len(fields) == EXPECTED_FIELDS:
        shown = list(fields)
        if shown[2].strip():
            shown[2] = "<customer>"
        if shown[6].strip() and shown[6].strip() != "None":
            shown[6] = "<card>"
    else:
        # Without the expected shape we cannot tell which cell holds the name: show only the
        # timestamp and branch.
        shown = fields[:2] + [f"<{max(0, len(fields) - 2)} more fields hidden>"]
    return _LONG_NUMBER.sub("<number>", ",".join(shown))[:500]


def _card_network(raw: str) -> str | None:
    value = raw.strip()
    if not value or value == "None":
        return None
    network, comma, _number = value.partition(",")
    # 'visa16' is Faker's provider code for a 16-digit visa: the network is the word.
    network = _TRAILING_DIGITS.sub("", network.strip().lower())
    return network if comma and _CARD_NETWORK.match(network) else None


def parse_csv_record(builder: SaleBuilder, line_no: int, fields: list[str], stats: ParseStats) -> Sale:
    if len(fields) != EXPECTED_FIELDS:
        raise Reject("wrong_field_count", f"the line has {len(fields)} fields, expected {EXPECTED_FIELDS} "
                                          "(cut short, or a stray comma?)")
    ts, branch, customer, basket, fifth, sixth, card = fields
    if fifth.strip().upper() in METHODS:        # dialect B writes method before total, A after
        method, total = fifth, sixth
    elif sixth.strip().upper() in METHODS:
        total, method = fifth, sixth
    else:
        raise Reject("bad_payment", f"no payment method: expected CASH or CARD in column 5 or 6, found "
                                    f"{fifth.strip()[:12]!r} and {sixth.strip()[:12]!r}")
    items, dialect = parse_basket(builder, basket)
    stats.dialects[dialect] = stats.dialects.get(dialect, 0) + 1
    return builder.sale(line_no=line_no, ts=ts, branch=branch, customer=customer, items=items, total=total,
                        method=method, card_network=_card_network(card))


def parse_basket(builder: SaleBuilder, basket: str) -> tuple[list[Item], str]:
    parts = basket.split(",")
    if not basket.strip():
        raise Reject("empty_basket", "the basket is empty")
    if not _is_dialect_b_basket(parts):
        # Dialect A: "Large Latte - 2.45, Regular Flavoured latte - Vanilla - 2.55"
        return [_item_from(builder.item_a(part)) for part in parts], "a"
    # Dialect B: "Large,Latte,2.45,,Glass of milk,0.7" (empty size for one-size products)
    items = []
    for i in range(0, len(parts), 3):
        product = builder.product(parts[i], parts[i + 1])
        items.append(Item(product, 1, builder.pence(parts[i + 2], "price")))
    return items, "b"


def _is_dialect_b_basket(parts: list[str]) -> bool:
    """size,product,price triples: every third cell a size (or empty), every third+2 a price."""
    if len(parts) % 3:
        return False
    return all((parts[i].strip().casefold() in SIZES or not parts[i].strip()) and _MONEY.match(parts[i + 2].strip())
               for i in range(0, len(parts), 3))


def _item_from(parsed: tuple[Product, int]) -> Item:
    return Item(parsed[0], 1, parsed[1])


def iter_csv(builder: SaleBuilder, text: io.TextIOBase, stats: ParseStats) -> Iterator[Sale | Rejection]:
    reader = csv.reader(text)
    last_line = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = last_line + 1
            last_line = reader.line_num
            yield Rejection(line, "unreadable_line", f"the line cannot be read as CSV ({exc})", "<unreadable>")
            continue
        line_no, last_line = last_line + 1, reader.line_num
        if not fields or all(not f.strip() for f in fields):
            stats.blank_lines += 1
            continue
        if fields[0].strip().lower() == "timestamp":
            stats.header_lines += 1       # header lines, possibly repeated; columns come from the values
            continue
        try:
            yield parse_csv_record(builder, line_no, fields, stats)
        except Reject as rej:
            yield Rejection(line_no, rej.code, rej.reason, mask_fields(fields))


def iter_json(builder: SaleBuilder, text: io.TextIOBase, stats: ParseStats) -> Iterator[Sale | Rejection]:
    """An array of objects or newline-delimited objects; read incrementally either way."""
    for number, record in _json_records(text):
        if isinstance(record, Rejection):
            yield record
            continue
        try:
            yield json_sale(builder, number, record, stats)
        except Reject as rej:
            yield Rejection(number, rej.code, rej.reason, _mask_json(record))


def _json_records(text: io.TextIOBase) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    buffer, position, number, eof = "", 0, 0, False
    in_array: bool | None = None

    def fill() -> bool:
        nonlocal buffer, position
        piece = text.read(1 << 16)
        buffer = buffer[position:] + piece
        position = 0
        return bool(piece)

    while True:
        while True:   # skip separators
            while position < len(buffer) and buffer[position] in " \t\r\n,\ufeff":
                position += 1
            if position < len(buffer) or eof:
                break
            eof = not fill()
        if position >= len(buffer):
            return
        if in_array is None:
            in_array = buffer[position] == "["
            if in_array:
                position += 1
                continue
        if in_array and buffer[position] == "]":
            return
        try:
            value, end = decoder.raw_decode(buffer, position)
        except json.JSONDecodeError:
            if not eof and fill():
                continue
            number += 1
            yield number, Rejection(number, "bad_json", "record is not valid JSON (file cut short?)",
                                    "<unreadable>")
            return
        if end == len(buffer) and not eof and not in_array:
            # A number or literal at the buffer's edge may continue in the next piece.
            if fill():
                continue
        number += 1
        position = end
        yield number, value


def json_sale(builder: SaleBuilder, number: int, record: Any, stats: ParseStats) -> Sale:
    if not isinstance(record, dict):
        raise Reject("bad_json", "record is not a JSON object")
    stats.dialects["json"] = stats.dialects.get("json", 0) + 1
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
            raise Reject("bad_quantity", f"item {position} quantity must be a whole number from 1 to "
                                         f"{MAX_QUANTITY}")
        name = raw["name"]
        if raw.get("flavour"):
            name = f"{name} - {raw['flavour']}"
        product = builder.product(str(raw.get("size") or ""), name)
        items.append(Item(product, quantity, builder.pence(str(raw.get("price", "")), "price")))
    extra = {}
    for key, value in record.items():
        if key in JSON_FIELDS:
            continue
        stats.extra_fields[key] = stats.extra_fields.get(key, 0) + 1
        if PERSONAL_FIELD.search(key):
            stats.pseudonymised_fields.add(key)
            value = None if value is None else f"pseudonym:{builder.customer(json.dumps(value))}"
        extra[key] = value
    network = record.get("card_network")
    customer = record.get("customer")
    return builder.sale(
        line_no=number, ts=str(record["timestamp"]), branch=str(record["branch"]),
        customer=str(customer) if customer is not None else None, items=items, total=str(record["total"]),
        method=str(record["payment_method"]),
        card_network=network.strip().lower() if isinstance(network, str) and network.strip() else None,
        extra=extra or None)


def _mask_json(record: Any) -> str:
    if not isinstance(record, dict):
        return "<not an object>"
    shown = {k: v for k, v in record.items()
             if k in ("timestamp", "branch", "total", "payment_method") and isinstance(v, (str, int, float))}
    return _LONG_NUMBER.sub("<number>", json.dumps(shown, ensure_ascii=False))[:500]


def sniff_format(head: bytes) -> str:
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if stripped[:1] in (b"[", b"{") else "csv"


def iter_records(builder: SaleBuilder, chunks: Iterable[bytes], encoding: str,
                 stats: ParseStats) -> Iterator[Sale | Rejection]:
    stream = text_stream(chunks, encoding)
    head = stream.buffer.peek(256)[:256]
    if sniff_format(head) == "json":
        return iter_json(builder, stream, stats)
    return iter_csv(builder, stream, stats)
