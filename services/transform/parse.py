"""Branch files in, validated sales and readable rejections out.

Input is read line by line: each line is decoded on its own (UTF-8, else Windows-1252, a BOM dropped
wherever it appears) and parsed as one CSV record, so an unclosed quote or a spreadsheet-encoded line
spoils only itself. Values are parsed through per-file memo tables because a day file repeats the
same ~70 basket items, ~700 minutes and a few dozen totals thousands of times.

The readers live beside this module: `csv_records` (lines, both CSV dialects) and `json_records`
(arrays and newline-delimited objects); `iter_records` picks one.

Personal data: the customer name is turned into its keyed pseudonym here and dropped; card numbers
are never kept. Rejection reasons never quote a cell, and a rejected row shows only the cells whose
shape cannot be personal (times, amounts, payment words, baskets, branches seen in the file).
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo

from services.common.crypto import CUSTOMER_PSEUDONYM_KEY, SALE_IDENTITY_KEY, derive_key, keyed_hex
from services.common.naming import branch_key, collapse_spaces, fold, product_key
from services.common.spreadsheet import csv_line

UK = ZoneInfo("Europe/London")
METHODS = {"CASH", "CARD"}
SIZES = {"regular": "Regular", "large": "Large", "small": "Small"}
EXPECTED_FIELDS = 7
MAX_ITEMS = 100
MAX_QUANTITY = 1000
MAX_PRICE_PENCE = 100_000
MAX_NAME = 100              # branch, product and flavour names (they are index keys)
MAX_ITEM_TEXT = 200
MAX_LINE_BYTES = 64 * 1024  # a till line is ~200 bytes; anything this long is not a sale
MAX_JSON_RECORD = 1024 * 1024
MEMO_LIMIT = 100_000
BASKET_MEMO_LIMIT = 10_000  # a basket entry holds its items: the common baskets fit, memory stays small
OLDEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
# A row for another registered branch than the upload's: a property of the file rather than of the row, so the
# load reports such rows once per file and foreign branch (services/transform/load.py), not once per row.
WRONG_BRANCH = "wrong_branch"
TIMESTAMP_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
                     "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")
# JSON fields we understand; of anything else, what services/transform/extra_fields.py allows is kept.
JSON_FIELDS = {"timestamp", "branch", "customer", "items", "total", "payment_method", "card_number", "card_network"}
PERSONAL_FIELD = re.compile(r"name|mail|phone|mobile|addr|card|\bcc\b|^cc$|pan|iban|account|birth|dob|postcode|"
                            r"zip|customer|person|contact|staff|employee|cashier|user|member", re.I)
MAX_EXTRA_DEPTH = 20

_MONEY = re.compile(r"^£?\s*(\d{1,7})(?:\.(\d{1,2}))?$")
_DMY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?")
_YMD = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?")
_ISO_WITH_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_TIMESTAMP_SHAPE = re.compile(r"^\d{1,4}[/-]\d{1,2}[/-]\d{1,4}(?:[ T][\d:.+Z-]{1,20})?$")
_TRAILING_DIGITS = re.compile(r"\d+$")
# The card networks a sale may name; any other word there is free text (a name in the wrong column) and is
# dropped, so nothing but this vocabulary reaches the warehouse through card_network.
CARD_NETWORKS = frozenset({"visa", "visaelectron", "mastercard", "maestro", "americanexpress", "amex", "discover",
                           "dinersclub", "diners", "jcb", "unionpay"})
# Card, phone and account numbers: 9+ digits, maybe grouped by spaces or hyphens (amounts have a
# point, so prices and totals are left alone); and spreadsheet-mangled numbers like 5.49E+15.
_LONG_NUMBER = re.compile(r"(?<![\d.])\d(?:[ \-]?\d){8,}(?![\d.])|\d\.\d+E\+\d+", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Rejected on load (a name is not a formula); exports neutralise every formula start besides
# (services/common/spreadsheet.py), whatever the source of the text.
_FORMULA_START = ("=", "+", "@")
# What PostgreSQL cannot store in text or jsonb: NUL, and lone surrogates (not encodable as UTF-8). CSV
# lines cannot hold surrogates (decoded from bytes); JSON can, through \u escapes.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_REASON = "the record contains a NUL character or broken Unicode (a lone surrogate)"
BOM = "\ufeff"


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
    extra_fields: dict[str, int] = field(default_factory=dict)
    extra_types: dict[str, set[str]] = field(default_factory=dict)
    withheld_fields: set[str] = field(default_factory=set)

    def extra_report(self) -> dict | None:
        """What the upload reports about unknown JSON fields: counts and types by name, and the paths
        whose values were withheld (services/transform/extra_fields.py)."""
        if not self.extra_fields:
            return None
        return {"fields": self.extra_fields, "types": {k: sorted(v) for k, v in self.extra_types.items()},
                "withheld": sorted(self.withheld_fields)}

    def dialect(self) -> str | None:
        if not self.dialects:
            return None
        return max(self.dialects, key=self.dialects.__getitem__) if len(self.dialects) == 1 else "mixed"

    def saw(self, dialect: str) -> None:
        self.dialects[dialect] = self.dialects.get(dialect, 0) + 1


def money_text(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}"


def scrub_numbers(text: str) -> str:
    return _EMAIL.sub("<email>", _LONG_NUMBER.sub("<number>", text))


def storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def storable_copy(text: str) -> str:
    """The text with what PostgreSQL cannot store replaced (the last guard before COPY; the parsers reject
    such records before they get there)."""
    return text if storable(text) else _UNSTORABLE.sub("\ufffd", text)


def _remember(memo: dict, key, value, limit: int = MEMO_LIMIT):
    """Memo tables stay bounded on huge files of unique values (a month of distinct customers)."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value


def _memoised(memo: dict, key, compute, *args):
    """The memo's value for key (computing it once as compute(*args)); a remembered rejection is
    raised again. Takes a function and arguments, not a closure: this runs several times per row."""
    found = memo.get(key)
    if found is None:
        found = _remember(memo, key, compute(*args))
    if found.__class__ is Reject:
        raise found
    return found


def _clean_text(raw: str, what: str, limit: int) -> str:
    """Collapsed text, or a rejection for what cannot be stored or shown (NUL, broken Unicode, size)."""
    text = collapse_spaces(raw)
    if "\x00" in text:
        raise Reject("bad_text", f"the {what} contains a NUL byte (binary data in the file?)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Reject("bad_text", f"the {what} is not valid Unicode text") from None
    if len(text) > limit:
        raise Reject("bad_text", f"the {what} is longer than {limit} characters")
    return text


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
        return None   # 31/02: the slow path produces the reason
    return None


def _read_timestamp(text: str) -> datetime | None:
    """A date and time in one of the formats branch files use, as written (no zone, or JSON's offset)."""
    parsed = _fast_timestamp(text)
    for fmt in () if parsed else TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    if parsed is None and _ISO_WITH_TIME.match(text):
        try:
            return datetime.fromisoformat(text)             # JSON may carry an offset
        except ValueError:
            return None
    return parsed


def _shown_timestamp(raw: str) -> str:
    """A rejected row's timestamp cell: as written when it is a real date and time (masking its digits as a
    long number made `2021-08-25 09:00:01` read `<number>:00:01`); only masked when it merely has the shape
    of one (a phone number can: `0770-09-0012 345678`); hidden otherwise."""
    text = raw.strip()
    if not _TIMESTAMP_SHAPE.match(text):
        return "<hidden>"
    return raw if _read_timestamp(text) is not None else scrub_numbers(raw)


class ValueMemo:
    """Memo tables of values whose meaning does not depend on the file, the poster or the moment
    (products, basket items, amounts, whole baskets): the files of one batch share them, so each
    distinct value is parsed once per batch instead of once per file. Nothing personal is kept here."""

    def __init__(self) -> None:
        self.money: dict[str, int | None] = {}
        self.products: dict[tuple[str, str], Product | Reject] = {}
        self.items_a: dict[str, tuple[Product, int] | Reject] = {}
        self.baskets: dict[str, tuple[list[Item], str, str] | Reject] = {}


class SaleBuilder:
    """Validates one sale's raw values. Memo tables make repeated values nearly free."""

    def __init__(self, secret: str, *, expected_branch_key: str | None, registered_branch_keys: Iterable[str] = (),
                 now: datetime | None = None, memo: ValueMemo | None = None,
                 allowed_extra_fields: Iterable[str] = (), branch_names: Mapping[str, str] | None = None) -> None:
        self._customer_key = derive_key(secret, CUSTOMER_PSEUDONYM_KEY)
        self._identity_key = derive_key(secret, SALE_IDENTITY_KEY)
        self.expected_branch_key = expected_branch_key
        # Rows load only for registered branches: a typo, or a name shifted into the branch column,
        # must not become a branch of the warehouse.
        self.registered_branch_keys = frozenset(registered_branch_keys)
        # Registered branches' names as an admin typed them (`cafeflow branch add`): the only branch names a
        # reason may quote (a branch cell of a file can hold anything, a customer's name shifted into it too).
        self.branch_names = dict(branch_names or {})
        # Unknown JSON fields whose free text an admin allow-listed (`cafeflow fields allow`).
        self.allowed_extra_fields = frozenset(allowed_extra_fields)
        self.latest = (now or datetime.now(timezone.utc)) + timedelta(days=1)
        # Branch names accepted in this file: the only branch cells a rejected row may show.
        self.known_branch_keys: set[str] = {expected_branch_key} if expected_branch_key else set()
        self._latest_epoch = int(self.latest.timestamp())
        self._times: dict[str, tuple[datetime, int] | Reject] = {}
        self._hours: dict[str, tuple[datetime, int] | Reject] = {}
        memo = memo or ValueMemo()
        self._money = memo.money
        self._products = memo.products
        self._items_a = memo.items_a
        self._baskets = memo.baskets
        self._branches: dict[str, tuple[str, str] | Reject] = {}
        self._customers: dict[str, str | Reject] = {}

    # -- values -------------------------------------------------------------------------------
    def timestamp(self, raw: str) -> tuple[datetime, int]:
        """(moment in UTC, epoch seconds); the memo holds one entry per distinct minute or second."""
        found = self._times.get(raw)
        if found is None:
            found = _remember(self._times, raw, self._till_minute(raw) or self._parse_timestamp(raw))
        if found.__class__ is Reject:
            raise found
        return found

    def _till_minute(self, raw: str) -> tuple[datetime, int] | Reject | None:
        """The till's own 'DD/MM/YYYY HH:MM' from its hour, parsed once per hour: a day file has a few
        hundred distinct minutes but only a dozen hours. None for any other shape (the full parser's)."""
        if len(raw) != 16 or raw[13] != ":" or not raw[14:].isdigit() or not raw.isascii() or raw[14] > "5":
            return None
        hour = _memoised(self._hours, raw[:13], self._parse_timestamp, raw[:13] + ":00")
        epoch = hour[1] + 60 * int(raw[14:])
        if epoch > self._latest_epoch:
            return Reject("future_timestamp", "the timestamp is in the future")
        return hour[0] + timedelta(seconds=epoch - hour[1]), epoch

    def _parse_timestamp(self, raw: str) -> tuple[datetime, int] | Reject:
        parsed = _read_timestamp(raw.strip())
        if parsed is None:
            return Reject("bad_timestamp", "the timestamp is not a real date and time "
                                           "(expected DD/MM/YYYY HH:MM or YYYY-MM-DD HH:MM:SS)")
        if parsed.tzinfo is None:
            local = parsed.replace(tzinfo=UK)               # branch files are UK local time
            # UK clocks go forward at 01:00 in March: only that hour can be a time that never existed.
            if parsed.month == 3 and parsed.hour == 1 and \
                    local.astimezone(timezone.utc).astimezone(UK).replace(tzinfo=None) != parsed:
                return Reject("bad_timestamp", "the local time does not exist (the clocks went forward)")
            parsed = local
        moment = parsed.astimezone(timezone.utc)
        if moment > self.latest:
            return Reject("future_timestamp", "the timestamp is in the future")
        if moment < OLDEST:
            return Reject("old_timestamp", "the timestamp is before the year 2000")
        return moment, int(moment.timestamp())

    def pence(self, raw: str, what: str) -> int:
        if raw in self._money:
            value = self._money[raw]
        else:
            match = _MONEY.match(raw.strip())
            value = _remember(self._money, raw, int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
                              if match else None)
        if value is None:
            raise Reject("bad_number", f"the {what} is not an amount like 2.45")
        return value

    def branch(self, raw: str) -> tuple[str, str]:
        return _memoised(self._branches, raw, self._parse_branch, raw)

    def _parse_branch(self, raw: str) -> tuple[str, str] | Reject:
        try:
            name = _clean_text(raw, "branch name", MAX_NAME)
        except Reject as rej:
            return rej
        key = branch_key(name)
        if not key:
            return Reject("missing_branch", "the branch name is empty")
        if name.startswith(_FORMULA_START):
            return Reject("formula_cell", "the branch name starts with a spreadsheet formula character")
        if key not in self.registered_branch_keys and key != self.expected_branch_key:
            return Reject("unknown_branch", "the branch is not registered; an admin adds it with "
                                            "`cafeflow branch add`")
        if self.expected_branch_key is not None and key != self.expected_branch_key:
            return Reject(WRONG_BRANCH, self._wrong_branch_reason(key))
        self.known_branch_keys.add(key)
        return key, name

    def _wrong_branch_reason(self, key: str) -> str:
        """One text per foreign branch, the same for all its rows: the load reports them once per file by it
        (services/transform/load.py). Both names are the registered ones, never the file's cell."""
        ours = self.branch_names.get(self.expected_branch_key or "")
        theirs = self.branch_names.get(key)
        if ours and theirs:
            return f"this file is for {theirs}; this upload is for {ours}"
        return "the row is for another branch than the one this upload is for"

    def product(self, size_raw: str, name_raw: str) -> Product:
        return _memoised(self._products, (size_raw, name_raw), self._parse_product, size_raw, name_raw)

    @staticmethod
    def _parse_product(size_raw: str, name_raw: str) -> Product | Reject:
        try:
            name = _clean_text(name_raw, "product name", MAX_NAME)
            size_text = _clean_text(size_raw, "size", 20)
        except Reject as rej:
            return rej
        if not name:
            return Reject("bad_item", "a basket item has no product name")
        if name.startswith(_FORMULA_START):
            return Reject("formula_cell", "a product name starts with a spreadsheet formula character")
        size = None
        if size_text:
            size = SIZES.get(size_text.casefold())
            if size is None:
                return Reject("bad_item", "a basket item's size is not Regular or Large")
        flavour = None
        if " - " in name:
            name, _, flavour = (part.strip() for part in name.partition(" - "))
            flavour = flavour or None
        return Product(product_key(name, size, flavour), name, size, flavour)

    def item_a(self, text: str) -> tuple[Product, int]:
        """'Large Flavoured latte - Hazelnut - 2.85' -> (product, pence)."""
        return _memoised(self._items_a, text, self._parse_item_a, text)

    def _parse_item_a(self, text: str) -> tuple[Product, int] | Reject:
        stripped = text.strip()
        body, dash, price = stripped.rpartition("-")      # linear: no backtracking on odd input
        if not dash or len(stripped) > MAX_ITEM_TEXT or not body.strip():
            return Reject("bad_item", "a basket item is not 'Size Product - price'")
        body = body.strip()
        size, _, rest = body.partition(" ")
        if size.casefold() not in SIZES or not rest:
            size, rest = "", body
        try:
            return self.product(size, rest), self.pence(price, "price of a basket item")
        except Reject as exc:
            return exc

    def basket(self, raw: str) -> tuple[list[Item], str, str]:
        """(items, dialect, identity) of a CSV basket cell; a café sells the same baskets all day."""
        found = self._baskets.get(raw)
        if found is None:
            found = _remember(self._baskets, raw, _parse_basket_memo(self, raw), BASKET_MEMO_LIMIT)
        if found.__class__ is Reject:
            raise found
        return found

    def customer(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        return _memoised(self._customers, raw, self._pseudonym, raw)

    def _pseudonym(self, raw: str) -> str | Reject:
        folded = fold(raw)
        if "\x00" in folded or len(folded) > 500:
            return Reject("bad_text", "the customer name is not plain text of at most 500 characters")
        try:
            return keyed_hex(self._customer_key, folded) if folded else ""
        except UnicodeEncodeError:
            return Reject("bad_text", "the customer name is not valid Unicode text")

    # -- the sale -------------------------------------------------------------------------------
    def sale(self, *, line_no: int, ts: str, branch: str, customer: str | None, items: list[Item],
             total: str, method: str, card_network: str | None, extra: dict[str, Any] | None = None,
             basket_identity: str | None = None) -> Sale:
        _moment, epoch = self.timestamp(ts)
        key, name = self.branch(branch)
        if not items:
            raise Reject("empty_basket", "the basket is empty")
        if len(items) > MAX_ITEMS:
            raise Reject("bad_item", f"the basket has more than {MAX_ITEMS} items")
        total_pence = self.pence(total, "total")
        basket = 0
        for item in items:
            if not 0 <= item.unit_pence <= MAX_PRICE_PENCE:   # 0.00 is real: a free babyccino
                raise Reject("bad_price", "a basket item's price is over 1000.00")
            basket += item.unit_pence * item.quantity
        if abs(basket - total_pence) > 1:
            raise Reject("total_mismatch", f"the total does not match the basket, which adds up to "
                                           f"{money_text(basket)}")
        payment = method.strip().upper()
        if payment not in METHODS:
            raise Reject("bad_payment", "the payment method is not CASH or CARD")
        customer_key = self.customer(customer) or None
        content_key = keyed_hex(self._identity_key, "\x1f".join((
            key, str(epoch), customer_key or "", basket_identity or _basket_identity(items), str(total_pence),
            payment)))
        return Sale(line_no, epoch, key, name, customer_key, content_key, items, total_pence, payment,
                    card_network, extra)

    # -- showing a rejected row -----------------------------------------------------------------
    def masked_csv(self, fields: list[str]) -> str:
        """The row with every cell that could hold personal data replaced, as a CSV line a spreadsheet
        reads as data (the shared rule for CSV cells)."""
        if len(fields) != EXPECTED_FIELDS:
            first = _shown_timestamp(fields[0]) if fields else "<hidden>"
            return csv_line([first, f"<{max(0, len(fields) - 1)} more cells hidden>"])[:500]
        ts, branch, customer, basket, fifth, sixth, card = fields
        shown = [
            branch if self._known_branch(branch) else "<hidden>",
            "<customer>" if customer.strip() else "",
            basket if _basket_shaped(basket) else "<hidden>",
            *(cell if _plain_cell(cell) else "<hidden>" for cell in (fifth, sixth)),
            "<card>" if card.strip() and card.strip() != "None" else card.strip(),
        ]
        return csv_line([_shown_timestamp(ts), *map(scrub_numbers, shown)])[:500]

    def masked_json(self, record: Any) -> str:
        if not isinstance(record, dict):
            return "<not an object>"
        shown = {}
        for key in ("timestamp", "branch", "total", "payment_method"):
            value = record.get(key)
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                continue
            text = str(value)
            if not storable(text):
                shown[key] = "<hidden>"
            elif key == "timestamp":
                shown[key] = _shown_timestamp(text)
            elif not (self._known_branch(text) if key == "branch" else _plain_cell(text)):
                shown[key] = "<hidden>"
            else:
                shown[key] = scrub_numbers(value) if isinstance(value, str) else value
        return json.dumps(shown, ensure_ascii=False)[:500]

    def _known_branch(self, cell: str) -> bool:
        return branch_key(cell) in self.known_branch_keys


def _plain_cell(cell: str) -> bool:
    value = cell.strip()
    return not value or value.upper() in METHODS or bool(_MONEY.match(value))


def _basket_shaped(basket: str) -> bool:
    parts = basket.split(",")
    if _is_dialect_b_basket(parts):
        return True
    return all(len(p) <= MAX_ITEM_TEXT and _MONEY.match(p.rpartition("-")[2].strip()) for p in parts)


def _basket_identity(items: list[Item]) -> str:
    counts: dict[tuple[str, int], int] = {}
    for item in items:
        slot = (item.product.product_key, item.unit_pence)
        counts[slot] = counts.get(slot, 0) + item.quantity
    return ";".join(f"{k}@{p}x{q}" for (k, p), q in sorted(counts.items()))


# ------------------------------------------------------------------------------------------------
# Baskets and card networks (both CSV dialects; the card network also in JSON)
# ------------------------------------------------------------------------------------------------
def _card_network(raw: str) -> str | None:
    """'visa16,4111...' -> 'visa' ('visa16' is Faker's code for a 16-digit visa); never the number."""
    value = raw.strip()
    if not value or value == "None":
        return None
    network, comma, _number = value.partition(",")
    return _network_word(network) if comma else None


def _network_word(raw: str) -> str | None:
    """'visa16' (Faker's code for a 16-digit visa) -> 'visa'; 'American Express' -> 'americanexpress'."""
    network = _TRAILING_DIGITS.sub("", raw.strip().lower()).replace(" ", "")
    return network if network in CARD_NETWORKS else None


def _parse_basket_memo(builder: SaleBuilder, basket: str) -> tuple[list[Item], str, str] | Reject:
    """parse_basket with the basket's identity, for the memo (the items list is shared, never changed)."""
    try:
        items, dialect = parse_basket(builder, basket)
    except Reject as rej:
        return rej
    return items, dialect, _basket_identity(items)


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
        items.append(Item(product, 1, builder.pence(parts[i + 2], "price of a basket item")))
    return items, "b"


def _is_dialect_b_basket(parts: list[str]) -> bool:
    """size,product,price triples: every third cell a size (or empty), every third+2 a price."""
    if len(parts) % 3:
        return False
    return all((parts[i].strip().casefold() in SIZES or not parts[i].strip()) and _MONEY.match(parts[i + 2].strip())
               for i in range(0, len(parts), 3))


def _item_from(parsed: tuple[Product, int]) -> Item:
    return Item(parsed[0], 1, parsed[1])


def sniff_format(head: str) -> str:
    return "json" if head.lstrip().lstrip(BOM).lstrip()[:1] in ("[", "{") else "csv"


def iter_records(builder: SaleBuilder, chunks: Iterable[bytes], stats: ParseStats) -> Iterator[Sale | Rejection]:
    """CSV or JSON, decided by the first non-blank character of the first chunk."""
    # Imported here: both reader modules build on this one.
    from services.transform.csv_records import iter_csv, iter_lines
    from services.transform.json_records import iter_json, json_text

    chunks = iter(chunks)
    first = next(chunks, b"")
    stream = itertools.chain((first,), chunks)
    if sniff_format(first[:4096].decode("utf-8", errors="replace")) == "json":
        return iter_json(builder, json_text(stream), stats)
    return iter_csv(builder, iter_lines(stream), stats)
