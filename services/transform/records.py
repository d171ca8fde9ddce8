"""What the parser produces and the limits it enforces: sales with their items and products, rejections
with their readable reasons, and the per-file statistics an upload reports. Shared by the row-wise readers
(`csv_records`, `json_records`), the vectorised CSV path (`csv_vectorised`) and the load."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

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
# A row for another registered branch than the upload's: a property of the file rather than of the row, so the
# load reports such rows once per file and foreign branch (services/transform/load.py), not once per row.
WRONG_BRANCH = "wrong_branch"
# JSON fields we understand; of anything else, what services/transform/extra_fields.py allows is kept.
JSON_FIELDS = {"timestamp", "branch", "customer", "items", "total", "payment_method", "card_number", "card_network"}
PERSONAL_FIELD = re.compile(r"name|mail|phone|mobile|addr|card|\bcc\b|^cc$|pan|iban|account|birth|dob|postcode|"
                            r"zip|customer|person|contact|staff|employee|cashier|user|member", re.I)
MAX_EXTRA_DEPTH = 20
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

    def saw(self, dialect: str, rows: int = 1) -> None:
        self.dialects[dialect] = self.dialects.get(dialect, 0) + rows
