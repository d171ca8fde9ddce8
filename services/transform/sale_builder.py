"""The row-wise rules: one sale's raw values validated into a Sale, or a Reject with its readable reason.
Values are parsed through per-file memo tables because a day file repeats the same ~70 basket items, ~700
minutes and a few dozen totals thousands of times.

Personal data: the customer name is turned into its keyed pseudonym here and dropped; card numbers
are never kept. Rejection reasons never quote a cell, and a rejected row shows only the cells whose
shape cannot be personal (times, amounts, payment words, baskets, branches seen in the file).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from services.common.crypto import CUSTOMER_PSEUDONYM_KEY, SALE_IDENTITY_KEY, KeyedHash, derive_key
from services.common.naming import branch_key, fold, product_key
from services.common.spreadsheet import csv_line
from services.transform.records import (EXPECTED_FIELDS, MAX_ITEM_TEXT, MAX_ITEMS, MAX_NAME, MAX_PRICE_PENCE, METHODS,
                                        SIZES, WRONG_BRANCH, Item, Product, Reject, Sale)
from services.transform.values import (FORMULA_START, MONEY, OLDEST, UK, basket_shaped, clean_text, identity_of_items,
                                       is_dialect_b_basket, money_text, plain_cell, read_timestamp, scrub_numbers,
                                       shown_timestamp, storable)

MEMO_LIMIT = 100_000
BASKET_MEMO_LIMIT = 10_000  # a basket entry holds its items: the common baskets fit, memory stays small


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
        self.customer_hash = KeyedHash(derive_key(secret, CUSTOMER_PSEUDONYM_KEY))
        self.identity_hash = KeyedHash(derive_key(secret, SALE_IDENTITY_KEY))
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
        self.latest_epoch = int(self.latest.timestamp())
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
        hour = self.till_hour(raw[:13])
        epoch = hour[1] + 60 * int(raw[14:])
        if epoch > self.latest_epoch:
            return Reject("future_timestamp", "the timestamp is in the future")
        return hour[0] + timedelta(seconds=epoch - hour[1]), epoch

    def till_hour(self, hour: str) -> tuple[datetime, int]:
        """The start of a till minute's hour ('DD/MM/YYYY HH'), as timestamp() gives it, or its rejection raised."""
        return _memoised(self._hours, hour, self._parse_timestamp, hour + ":00")

    def _parse_timestamp(self, raw: str) -> tuple[datetime, int] | Reject:
        parsed = read_timestamp(raw.strip())
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
            match = MONEY.match(raw.strip())
            value = _remember(self._money, raw, int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
                              if match else None)
        if value is None:
            raise Reject("bad_number", f"the {what} is not an amount like 2.45")
        return value

    def branch(self, raw: str) -> tuple[str, str]:
        return _memoised(self._branches, raw, self._parse_branch, raw)

    def _parse_branch(self, raw: str) -> tuple[str, str] | Reject:
        verdict = self.branch_verdict(raw)
        if verdict.__class__ is not Reject:
            self.known_branch_keys.add(verdict[0])
        return verdict

    def branch_verdict(self, raw: str) -> tuple[str, str] | Reject:
        """(key, name) of a branch cell, or its rejection; unlike branch(), neither remembered nor making the
        branch known (the vectorised path makes it known at the line where the row-wise path would)."""
        try:
            name = clean_text(raw, "branch name", MAX_NAME)
        except Reject as rej:
            return rej
        key = branch_key(name)
        if not key:
            return Reject("missing_branch", "the branch name is empty")
        if name.startswith(FORMULA_START):
            return Reject("formula_cell", "the branch name starts with a spreadsheet formula character")
        if key not in self.registered_branch_keys and key != self.expected_branch_key:
            return Reject("unknown_branch", "the branch is not registered; an admin adds it with "
                                            "`cafeflow branch add`")
        if self.expected_branch_key is not None and key != self.expected_branch_key:
            return Reject(WRONG_BRANCH, self._wrong_branch_reason(key))
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
            name = clean_text(name_raw, "product name", MAX_NAME)
            size_text = clean_text(size_raw, "size", 20)
        except Reject as rej:
            return rej
        if not name:
            return Reject("bad_item", "a basket item has no product name")
        if name.startswith(FORMULA_START):
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
        folded = self.pseudonym_input(raw)
        if folded.__class__ is Reject:
            return folded
        try:
            return self.customer_hash.hex(folded) if folded else ""
        except UnicodeEncodeError:
            return Reject("bad_text", "the customer name is not valid Unicode text")

    @staticmethod
    def pseudonym_input(raw: str) -> str | Reject:
        """What a customer name's pseudonym is the keyed hash of (its folded form; empty: no customer)."""
        folded = fold(raw)
        if "\x00" in folded or len(folded) > 500:
            return Reject("bad_text", "the customer name is not plain text of at most 500 characters")
        return folded

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
        content_key = self.identity_hash.hex("\x1f".join((
            key, str(epoch), customer_key or "", basket_identity or identity_of_items(items), str(total_pence),
            payment)))
        return Sale(line_no, epoch, key, name, customer_key, content_key, items, total_pence, payment,
                    card_network, extra)

    # -- showing a rejected row -----------------------------------------------------------------
    def masked_csv(self, fields: list[str]) -> str:
        """The row with every cell that could hold personal data replaced, as a CSV line a spreadsheet
        reads as data (the shared rule for CSV cells)."""
        if len(fields) != EXPECTED_FIELDS:
            first = shown_timestamp(fields[0]) if fields else "<hidden>"
            return csv_line([first, f"<{max(0, len(fields) - 1)} more cells hidden>"])[:500]
        ts, branch, customer, basket, fifth, sixth, card = fields
        shown = [
            branch if self._known_branch(branch) else "<hidden>",
            "<customer>" if customer.strip() else "",
            basket if basket_shaped(basket) else "<hidden>",
            *(cell if plain_cell(cell) else "<hidden>" for cell in (fifth, sixth)),
            "<card>" if card.strip() and card.strip() != "None" else card.strip(),
        ]
        return csv_line([shown_timestamp(ts), *map(scrub_numbers, shown)])[:500]

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
                shown[key] = shown_timestamp(text)
            elif not (self._known_branch(text) if key == "branch" else plain_cell(text)):
                shown[key] = "<hidden>"
            else:
                shown[key] = scrub_numbers(value) if isinstance(value, str) else value
        return json.dumps(shown, ensure_ascii=False)[:500]

    def _known_branch(self, cell: str) -> bool:
        return branch_key(cell) in self.known_branch_keys


def _parse_basket_memo(builder: SaleBuilder, basket: str) -> tuple[list[Item], str, str] | Reject:
    """parse_basket with the basket's identity, for the memo (the items list is shared, never changed)."""
    try:
        items, dialect = parse_basket(builder, basket)
    except Reject as rej:
        return rej
    return items, dialect, identity_of_items(items)


def parse_basket(builder: SaleBuilder, basket: str) -> tuple[list[Item], str]:
    parts = basket.split(",")
    if not basket.strip():
        raise Reject("empty_basket", "the basket is empty")
    if not is_dialect_b_basket(parts):
        # Dialect A: "Large Latte - 2.45, Regular Flavoured latte - Vanilla - 2.55"
        return [_item_from(builder.item_a(part)) for part in parts], "a"
    # Dialect B: "Large,Latte,2.45,,Glass of milk,0.7" (empty size for one-size products)
    items = []
    for i in range(0, len(parts), 3):
        product = builder.product(parts[i], parts[i + 1])
        items.append(Item(product, 1, builder.pence(parts[i + 2], "price of a basket item")))
    return items, "b"


def _item_from(parsed: tuple[Product, int]) -> Item:
    return Item(parsed[0], 1, parsed[1])
