"""Values of a sale as branch files write them: amounts, timestamps, text, card networks and basket shapes.
Pure functions of their text (nothing here depends on the file, the poster or the moment), shared by the
row-wise rules (`sale_builder`) and the vectorised CSV path (`csv_vectorised`), so each rule is written once."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from services.common.naming import collapse_spaces
from services.transform.records import MAX_ITEM_TEXT, METHODS, SIZES, Item, Reject

UK = ZoneInfo("Europe/London")
OLDEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
TIMESTAMP_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
                     "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")
MONEY = re.compile(r"^£?\s*(\d{1,7})(?:\.(\d{1,2}))?$")
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
FORMULA_START = ("=", "+", "@")
# What PostgreSQL cannot store in text or jsonb: NUL, and lone surrogates (not encodable as UTF-8). CSV
# lines cannot hold surrogates (decoded from bytes); JSON can, through \u escapes.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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


def clean_text(raw: str, what: str, limit: int) -> str:
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


def read_timestamp(text: str) -> datetime | None:
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


def shown_timestamp(raw: str) -> str:
    """A rejected row's timestamp cell: as written when it is a real date and time (masking its digits as a
    long number made `2021-08-25 09:00:01` read `<number>:00:01`); only masked when it merely has the shape
    of one (a phone number can: `0770-09-0012 345678`); hidden otherwise."""
    text = raw.strip()
    if not _TIMESTAMP_SHAPE.match(text):
        return "<hidden>"
    return raw if read_timestamp(text) is not None else scrub_numbers(raw)


def plain_cell(cell: str) -> bool:
    value = cell.strip()
    return not value or value.upper() in METHODS or bool(MONEY.match(value))


def basket_shaped(basket: str) -> bool:
    parts = basket.split(",")
    if is_dialect_b_basket(parts):
        return True
    return all(len(p) <= MAX_ITEM_TEXT and MONEY.match(p.rpartition("-")[2].strip()) for p in parts)


def identity_of_items(items: list[Item]) -> str:
    counts: dict[tuple[str, int], int] = {}
    for item in items:
        slot = (item.product.product_key, item.unit_pence)
        counts[slot] = counts.get(slot, 0) + item.quantity
    return ";".join(f"{k}@{p}x{q}" for (k, p), q in sorted(counts.items()))


def card_network(raw: str) -> str | None:
    """'visa16,4111...' -> 'visa' ('visa16' is Faker's code for a 16-digit visa); never the number."""
    value = raw.strip()
    if not value or value == "None":
        return None
    network, comma, _number = value.partition(",")
    return network_word(network) if comma else None


def network_word(raw: str) -> str | None:
    """'visa16' (Faker's code for a 16-digit visa) -> 'visa'; 'American Express' -> 'americanexpress'."""
    network = _TRAILING_DIGITS.sub("", raw.strip().lower()).replace(" ", "")
    return network if network in CARD_NETWORKS else None


def is_dialect_b_basket(parts: list[str]) -> bool:
    """size,product,price triples: every third cell a size (or empty), every third+2 a price."""
    if len(parts) % 3:
        return False
    return all((parts[i].strip().casefold() in SIZES or not parts[i].strip()) and MONEY.match(parts[i + 2].strip())
               for i in range(0, len(parts), 3))
