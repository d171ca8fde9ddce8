"""Normalised keys shared by ingest (token branches), transform (rows) and orders (live sales)."""
from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+")
_SPACES = re.compile(r"\s+")


def branch_key(name: str) -> str:
    """'Isle of Wight', 'isle-of-wight' and ' ISLE  OF WIGHT' are one branch; accents are dropped
    ('Bronté' = 'Bronte'), other scripts kept ('東京')."""
    decomposed = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return _NON_WORD.sub(" ", folded).strip()


def collapse_spaces(value: str) -> str:
    return _SPACES.sub(" ", value).strip()


def fold(value: str) -> str:
    """Case- and spacing-insensitive form of a name: product names, and customer names before they are
    pseudonymised (the file path and live orders must fold a name identically, or one customer would
    get two pseudonyms)."""
    if value.isascii():     # NFKC leaves ASCII as it is; split() collapses the same spaces as the regex
        return " ".join(value.split()).lower()
    return collapse_spaces(unicodedata.normalize("NFKC", value)).casefold()


def product_key(name: str, size: str | None, flavour: str | None) -> str:
    """dim_product's natural key: 'flavoured latte|regular|hazelnut' (empty parts for no size/flavour)."""
    return f"{fold(name)}|{(size or '').casefold()}|{fold(flavour) if flavour else ''}"
