"""Figures of the real branch files, computed here independently of the code under test."""
from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from tests.support import REAL_FILES

_ITEM_PRICE = re.compile(r" - \d+\.\d\d$")


@dataclass
class Figures:
    transactions: int = 0
    items: int = 0
    revenue: Decimal = Decimal("0")
    per_branch: Counter = field(default_factory=Counter)
    revenue_per_branch: dict = field(default_factory=dict)
    names: set = field(default_factory=set)
    cards: set = field(default_factory=set)


@lru_cache(maxsize=1)
def real_figures() -> Figures:
    files = sorted(REAL_FILES.glob("*.csv"))
    assert len(files) == 65, f"expected the 65 real branch files in {REAL_FILES}"
    figures = Figures()
    for path in files:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if not row or row[0] == "timestamp":
                    continue
                figures.transactions += 1
                branch = row[1]
                figures.per_branch[branch] += 1
                if _ITEM_PRICE.search(row[3].split(", ")[0]):      # dialect A
                    figures.items += len(row[3].split(", "))
                    total = Decimal(row[4])
                    card = row[6]
                else:                                               # dialect B: size,product,price triples
                    figures.items += len(row[3].split(",")) // 3
                    total = Decimal(row[5] if row[4] in ("CASH", "CARD") else row[4])
                    card = row[6].split(",")[-1] if row[6] != "None" else ""
                figures.revenue += total
                figures.revenue_per_branch[branch] = figures.revenue_per_branch.get(branch, Decimal(0)) + total
                figures.names.add(row[2])
                if card:
                    figures.cards.add(card)
    return figures


def real_files() -> list[Path]:
    return sorted(REAL_FILES.glob("*.csv"))
