"""Normalised keys shared by ingest (token branches) and transform (rows)."""
from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_SPACES = re.compile(r"\s+")


def branch_key(name: str) -> str:
    """'Isle of Wight', 'isle-of-wight' and ' ISLE  OF WIGHT' are one branch."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    return _NON_ALNUM.sub(" ", folded).strip()


def collapse_spaces(value: str) -> str:
    return _SPACES.sub(" ", value).strip()
