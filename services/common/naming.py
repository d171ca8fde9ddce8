"""Normalised keys shared by ingest (token branches) and transform (rows)."""
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
