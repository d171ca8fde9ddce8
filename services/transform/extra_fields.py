"""Unknown JSON fields: what of them reaches the warehouse (`fact_transaction.extra`).

Producers add fields we do not know (`guest`, `payer`, `loyalty: {holder: ...}`, an IP address). Guessing
which are personal from their names cannot be complete, so the rule is by value, not by name:

- names and types are kept (and reported on the upload: counts, types, and what was withheld);
- numbers and booleans are kept, except numbers of 9 or more digits (card, phone, account numbers) and any
  number under a field whose name looks personal (`phone`, `card`, `customer_id`...);
- text is kept only when it is a *short enumerated code*: 1 to 16 characters of `A-Z a-z 0-9 _ -`, at most 6
  of them digits, not a capitalised word (`Alice`, `McDonald` read as names; `gold`, `GOLD`, `eat_in`,
  `TILL-07` do not), not a word of the sale's customer name, and not under a personal-looking field name.
  The alphabet alone rules out e-mail addresses, IP addresses, phone numbers with spaces or `+`, and anything
  with a space; the digit limit rules out card and phone numbers written as digits;
- any other text is withheld (`"<text withheld>"`) unless an admin allow-listed the field or one of its
  parents (`cafeflow fields allow loyalty.note`, table `ingest.extra_field_allowed`); allow-listed text
  still has long numbers, e-mail addresses and the customer's own name masked.

Nested objects and lists follow the same rule; a nested field's path is its parents' names joined by dots
(list elements take their list's path)."""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from itertools import islice
from typing import Any

from services.transform.records import MAX_EXTRA_DEPTH, PERSONAL_FIELD, ParseStats
from services.transform.values import scrub_numbers

WITHHELD_TEXT = "<text withheld>"
WITHHELD_NUMBER = "<number withheld>"
MAX_KEYS = 100                  # per object, and per record at the top
MAX_KEY_LENGTH = 100
MAX_REPORTED_FIELDS = 200       # distinct names on an upload's report (a hostile file could send millions)
MAX_CODE_DIGITS = 6
LONG_NUMBER = 100_000_000       # 9 digits: as long as the card and phone numbers scrub_numbers masks in text
_SHORT_CODE = re.compile(r"[A-Za-z0-9_-]{1,16}")
_NAME_LIKE = re.compile(r"(?:[A-Z][a-z]+)+")
_MORE = "<more fields>"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "object" if isinstance(value, dict) else "list"


@dataclass(frozen=True)
class _Record:
    """What the rule needs to know about the record a value belongs to."""
    allowed: frozenset[str]
    customer: str
    customer_words: frozenset[str]
    stats: ParseStats


def clean_extra(record: dict, known: set[str], allowed: frozenset[str], customer: str | None,
                stats: ParseStats) -> dict:
    """The record's unknown fields as they may be stored, counted and typed on `stats`."""
    name = (customer or "").strip()
    context = _Record(allowed, name, frozenset(_plain_word(word) for word in name.split()), stats)
    extra = {}
    for key in list(islice((key for key in record if key not in known), MAX_KEYS)):
        value = record[key]
        reported = key if key in stats.extra_fields or len(stats.extra_fields) < MAX_REPORTED_FIELDS else _MORE
        stats.extra_fields[reported] = stats.extra_fields.get(reported, 0) + 1
        stats.extra_types.setdefault(reported, set()).add(json_type(value))
        short = key[:MAX_KEY_LENGTH]
        extra[short] = _clean(context, short, value, key in allowed, bool(PERSONAL_FIELD.search(key)), 0)
    return extra


def _clean(context: _Record, path: str, value: Any, allowed: bool, personal: bool, depth: int) -> Any:
    if depth > MAX_EXTRA_DEPTH:
        return "<nested too deeply>"
    if isinstance(value, dict):
        cleaned = {}
        for key, item in list(value.items())[:MAX_KEYS]:
            short = str(key)[:MAX_KEY_LENGTH]
            inner = f"{path}.{short}"
            cleaned[short] = _clean(context, inner, item, allowed or inner in context.allowed,
                                    personal or bool(PERSONAL_FIELD.search(short)), depth + 1)
        return cleaned
    if isinstance(value, list):
        return [_clean(context, path, item, allowed, personal, depth + 1) for item in value[:MAX_KEYS]]
    if isinstance(value, str):
        if allowed:
            return _masked_text(value, context.customer)
        if not personal and _short_code(value, context.customer_words):
            return value
        return _withheld(context, path, WITHHELD_TEXT)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not allowed \
            and (personal or abs(value) >= LONG_NUMBER):
        return _withheld(context, path, WITHHELD_NUMBER)
    return value                                   # booleans, null, ordinary numbers


def _short_code(text: str, customer_words: frozenset[str]) -> bool:
    return bool(_SHORT_CODE.fullmatch(text)) and sum(c.isdigit() for c in text) <= MAX_CODE_DIGITS \
        and not _NAME_LIKE.fullmatch(text) and _plain_word(text) not in customer_words


def _plain_word(word: str) -> str:
    """'Zoë' and 'ZOE' as 'zoe': a code equal to a word of the customer's name is that name."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _masked_text(text: str, customer: str) -> str:
    """Allow-listed free text: kept, with the customer's own name, long numbers and e-mail addresses masked."""
    text = text[:1000]
    if customer and customer.casefold() in text.casefold():
        text = re.sub(re.escape(customer), "<customer>", text, flags=re.I)
    return scrub_numbers(text)


def _withheld(context: _Record, path: str, marker: str) -> str:
    if len(context.stats.withheld_fields) < MAX_REPORTED_FIELDS:
        context.stats.withheld_fields.add(path)
    return marker
