"""Synthetic branch till files shaped like the real ones.

``cafeflow generate`` writes one file per branch per day in one of three dialects:

* ``a``    - the dialect of most real files (no header, ``DD/MM/YYYY HH:MM``, basket
             ``"Size Product - 2.45, ..."``, total printed the way the tills print it);
* ``b``    - the older isle-of-wight dialect (six header lines that lie about the column order,
             ``YYYY-MM-DD HH:MM:SS``, basket ``"size,product,price,..."``, card ``"network,number"``
             or ``None``);
* ``json`` - newline-delimited JSON, one sale per line.

Output is a pure function of the arguments (and of the installed Faker version, which supplies the
customer names): the same arguments give byte-identical files. Every file has its own
``random.Random`` seeded from (seed, branch, date), so a given branch-day holds the same sales
whatever the number of branches or days asked for and whichever dialect it is written in.

``MENU`` was read once from the real files in ``samples/branch-files`` and is kept here as a
literal table; nothing here reads those files at run time. Money is ``Decimal`` throughout.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import pathlib
import random
import re
from collections import Counter
from decimal import Decimal

import click
from faker import Faker

from services.common.spreadsheet import csv_writer

__all__ = ["BRANCH_NAMES", "MENU", "branch_name", "branch_slug", "generate", "generate_command"]

# (name, size, price). Sized entries: the 2021 dialect-A files, which agree on one price per
# (name, size). One-size entries (size ""): the isle-of-wight dialect-B file, prices padded to two
# decimals. "Hot Chocolate" (1.40/1.70, Leeds) and "Hot chocolate" (2.20/2.90, Brixton, Camden,
# Uppingham) are two different products in the real files and are kept apart here.
MENU: tuple[tuple[str, str, str], ...] = (
    # sized items: 2021 dialect-A files (Regular / Large)
    ("Cappuccino", "Regular", "2.15"),
    ("Cappuccino", "Large", "2.45"),
    ("Chai latte", "Regular", "2.30"),
    ("Chai latte", "Large", "2.60"),
    ("Cortado", "Regular", "2.05"),
    ("Cortado", "Large", "2.35"),
    ("Espresso", "Regular", "1.50"),
    ("Espresso", "Large", "1.80"),
    ("Filter coffee", "Regular", "1.50"),
    ("Filter coffee", "Large", "1.80"),
    ("Flat white", "Regular", "2.15"),
    ("Flat white", "Large", "2.45"),
    ("Flavoured hot chocolate - Caramel", "Regular", "2.60"),
    ("Flavoured hot chocolate - Caramel", "Large", "2.90"),
    ("Flavoured hot chocolate - Hazelnut", "Regular", "2.60"),
    ("Flavoured hot chocolate - Hazelnut", "Large", "2.90"),
    ("Flavoured hot chocolate - Vanilla", "Regular", "2.60"),
    ("Flavoured hot chocolate - Vanilla", "Large", "2.90"),
    ("Flavoured iced latte - Caramel", "Regular", "2.75"),
    ("Flavoured iced latte - Caramel", "Large", "3.25"),
    ("Flavoured iced latte - Hazelnut", "Regular", "2.75"),
    ("Flavoured iced latte - Hazelnut", "Large", "3.25"),
    ("Flavoured iced latte - Vanilla", "Regular", "2.75"),
    ("Flavoured iced latte - Vanilla", "Large", "3.25"),
    ("Flavoured latte - Caramel", "Regular", "2.55"),
    ("Flavoured latte - Caramel", "Large", "2.85"),
    ("Flavoured latte - Hazelnut", "Regular", "2.55"),
    ("Flavoured latte - Hazelnut", "Large", "2.85"),
    ("Flavoured latte - Vanilla", "Regular", "2.55"),
    ("Flavoured latte - Vanilla", "Large", "2.85"),
    ("Frappes - Coffee", "Regular", "2.75"),
    ("Frappes - Coffee", "Large", "3.25"),
    ("Frappes - Strawberries & Cream", "Regular", "2.75"),
    ("Frappes - Strawberries & Cream", "Large", "3.25"),
    ("Glass of milk", "Regular", "0.70"),
    ("Glass of milk", "Large", "1.10"),
    ("Hot Chocolate", "Regular", "1.40"),
    ("Hot Chocolate", "Large", "1.70"),
    ("Hot chocolate", "Regular", "2.20"),
    ("Hot chocolate", "Large", "2.90"),
    ("Iced americano", "Regular", "2.15"),
    ("Iced americano", "Large", "2.50"),
    ("Iced latte", "Regular", "2.35"),
    ("Iced latte", "Large", "2.85"),
    ("Latte", "Regular", "2.15"),
    ("Latte", "Large", "2.45"),
    ("Luxury hot chocolate", "Regular", "2.40"),
    ("Luxury hot chocolate", "Large", "2.70"),
    ("Mocha", "Regular", "2.30"),
    ("Mocha", "Large", "2.70"),
    ("Red Label tea", "Regular", "1.20"),
    ("Red Label tea", "Large", "1.80"),
    ("Smoothies - Berry Beautiful", "Regular", "2.00"),
    ("Smoothies - Berry Beautiful", "Large", "2.50"),
    ("Smoothies - Carrot Kick", "Regular", "2.00"),
    ("Smoothies - Carrot Kick", "Large", "2.50"),
    ("Smoothies - Glowing Greens", "Regular", "2.00"),
    ("Smoothies - Glowing Greens", "Large", "2.50"),
    ("Speciality Tea - Camomile", "Regular", "1.30"),
    ("Speciality Tea - Camomile", "Large", "1.60"),
    ("Speciality Tea - Earl Grey", "Regular", "1.30"),
    ("Speciality Tea - Earl Grey", "Large", "1.60"),
    ("Speciality Tea - English breakfast", "Regular", "1.30"),
    ("Speciality Tea - English breakfast", "Large", "1.60"),
    ("Speciality Tea - Green", "Regular", "1.30"),
    ("Speciality Tea - Green", "Large", "1.60"),
    ("Speciality Tea - Peppermint", "Regular", "1.30"),
    ("Speciality Tea - Peppermint", "Large", "1.60"),
    # one-size items: isle-of-wight dialect-B file (empty size)
    ("Babyccino", "", "0.00"),
    ("Cortado", "", "2.05"),
    ("Flat white", "", "2.15"),
    ("Flavoured iced latte - Caramel", "", "2.75"),
    ("Flavoured iced latte - Hazelnut", "", "2.75"),
    ("Flavoured iced latte - Vanilla", "", "2.75"),
    ("Frappes - Chocolate Cookie", "", "2.75"),
    ("Frappes - Coffee", "", "2.75"),
    ("Frappes - Strawberries & Cream", "", "2.75"),
    ("Glass of milk", "", "0.70"),
    ("Hot Chocolate", "", "1.40"),
    ("Iced americano", "", "2.15"),
    ("Iced latte", "", "2.35"),
    ("Mocha", "", "2.30"),
    ("Red Label tea", "", "1.20"),
    ("Smoothies - Berry Beautiful", "", "2.00"),
    ("Smoothies - Carrot Kick", "", "2.00"),
    ("Smoothies - Glowing Greens", "", "2.00"),
    ("Speciality Tea - Camomile", "", "1.30"),
    ("Speciality Tea - Darjeeling", "", "1.30"),
    ("Speciality Tea - Earl Grey", "", "1.30"),
    ("Speciality Tea - English breakfast", "", "1.30"),
    ("Speciality Tea - Fruit", "", "1.30"),
    ("Speciality Tea - Green", "", "1.30"),
    ("Speciality Tea - Peppermint", "", "1.30"),
)

# The chain's real branches first, then other UK towns. Past the end of the list names repeat
# with a number: "Leeds 2", "Leeds 3", ...
BRANCH_NAMES: tuple[str, ...] = (
    "Birmingham",
    "Chesterfield",
    "Leeds",
    "London Brixton",
    "London Camden",
    "London Piccadilly",
    "London Soho",
    "Longridge",
    "Uppingham",
    "Isle of Wight",
    "Manchester",
    "Liverpool",
    "Bristol",
    "Sheffield",
    "Newcastle upon Tyne",
    "Nottingham",
    "Leicester",
    "Coventry",
    "Bradford",
    "Hull",
    "Stoke-on-Trent",
    "Wolverhampton",
    "Derby",
    "Southampton",
    "Portsmouth",
    "Plymouth",
    "Exeter",
    "Norwich",
    "Cambridge",
    "Oxford",
    "York",
    "Bath",
    "Brighton",
    "Reading",
    "Milton Keynes",
    "Northampton",
    "Peterborough",
    "Lincoln",
    "Harrogate",
    "Durham",
    "Carlisle",
    "Lancaster",
    "Preston",
    "Blackpool",
    "Chester",
    "Shrewsbury",
    "Hereford",
    "Worcester",
    "Gloucester",
    "Cheltenham",
    "Salisbury",
    "Winchester",
    "Canterbury",
    "Colchester",
    "Ipswich",
    "King's Lynn",
    "Scarborough",
    "Whitby",
    "Kendal",
    "Keswick",
    "Truro",
    "Penzance",
    "Barnstaple",
    "Taunton",
    "Stamford",
    "Oakham",
    "Ludlow",
    "Skipton",
    "Hexham",
    "Berwick-upon-Tweed",
)

# A few customers whose names need more than ASCII; mixed into the Faker en_GB names.
ACCENTED_NAMES: tuple[str, ...] = (
    "Zoë Brontë",
    "José Álvarez",
    "Chloé Dubois",
    "Renée Fontaine",
    "Björn Olsen",
    "Siân Llewellyn",
    "Róisín Ní Bhriain",
    "Seán Ó Briain",
    "Łukasz Wójcik",
    "Noémie Lefèvre",
    "Agnieszka Kowalczyk-Żak",
    "François Béranger",
    "Jürgen Müller",
    "Inês Gonçalves",
    "Dafydd ap Siôn",
)

# The isle-of-wight file's six header lines, verbatim: the first two name the columns in the
# order the rows use (method before price), the other four swap them.
DIALECT_B_HEADER = (
    "timestamp,branch,custumer,basket,method,price,card\n" * 2
    + "timestamp,branch,custumer,basket,price,method,card\n" * 4
)
CARD_NETWORKS: tuple[str, ...] = ("visa", "mastercard", "americanexpress", "discover")
DIALECTS: tuple[str, ...] = ("a", "b", "json")

OPEN_HOUR, CLOSE_HOUR = 7, 20  # sales from 07:00:00 to 19:59:59 local time
# relative weight of each opening hour (07..19): breakfast rush, lunch, a quiet evening
_HOUR_WEIGHTS = (7, 10, 8, 6, 6, 9, 9, 6, 5, 5, 4, 3, 2)
_HOURS = tuple(range(OPEN_HOUR, CLOSE_HOUR))
# basket sizes 1..6, weighted like the real dialect-A files (4661, 4711, 3871, 2829, 1868, 968)
_BASKET_SIZES = (1, 2, 3, 4, 5, 6)
_BASKET_WEIGHTS = (47, 47, 39, 28, 19, 10)
_CARD_SHARE = 0.55
_ACCENTED_SHARE = 0.02
_NAME_POOL = 4000

_ITEMS = range(len(MENU))
_PRICES = tuple(Decimal(price) for _, _, price in MENU)


def _short(amount: Decimal) -> str:
    """Money the way the tills print totals (and dialect B prices): 6.5, 4.0, 7.05, 0.0."""
    text = f"{amount:.2f}"
    return text.removesuffix("0")


# per-item text, precomputed once per menu entry
_A_TEXT = tuple(f"{size} {name} - {price}" if size else f"{name} - {price}" for name, size, price in MENU)
_B_TEXT = tuple(f"{size},{name},{_short(Decimal(price))}" for name, size, price in MENU)


def branch_name(index: int) -> str:
    """Name of the index-th generated branch (0-based)."""
    base = BRANCH_NAMES[index % len(BRANCH_NAMES)]
    round_ = index // len(BRANCH_NAMES)
    return base if round_ == 0 else f"{base} {round_ + 1}"


def branch_slug(name: str) -> str:
    """File-name form of a branch: "London Brixton" -> "london_brixton", "King's Lynn" -> "kings_lynn"."""
    return re.sub(r"[^a-z0-9-]+", "_", name.lower().replace("'", "")).strip("_")


def _customer_pool(seed: int) -> tuple[str, ...]:
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    return tuple(f"{fake.first_name()} {fake.last_name()}" for _ in range(_NAME_POOL))


def _sale_times(rng: random.Random, count: int) -> list[int]:
    """Seconds after midnight, strictly increasing while an hour has room, within opening hours."""
    per_hour = Counter(rng.choices(_HOURS, weights=_HOUR_WEIGHTS, k=count))
    times: list[int] = []
    for hour in _HOURS:
        n = per_hour.get(hour, 0)
        if n <= 3600:
            seconds = rng.sample(range(3600), n)
        else:  # more than one sale a second: allow ties
            seconds = [rng.randrange(3600) for _ in range(n)]
        seconds.sort()
        times.extend(hour * 3600 + s for s in seconds)
    return times


def _card(network: str, digits: str) -> str:
    """Dialect B: a number shaped like the network's (prefix and length) from 16 random digits."""
    if network == "visa":
        return "4" + digits[1:]
    if network == "mastercard":
        return "5" + "12345"[int(digits[1]) % 5] + digits[2:]
    if network == "discover":
        return "6011" + digits[4:]
    return "3" + "47"[int(digits[1]) % 2] + digits[2:15]  # americanexpress: 15 digits


def _write_file(
    path: pathlib.Path,
    dialect: str,
    branch: str,
    day: dt.date,
    count: int,
    seed: int,
    customers: tuple[str, ...],
) -> int:
    """Write one branch-day; return the number of basket items."""
    rng = random.Random(f"cafeflow-generate:{seed}:{branch}:{day.isoformat()}")
    times = _sale_times(rng, count)
    sizes = rng.choices(_BASKET_SIZES, weights=_BASKET_WEIGHTS, k=count)
    choices, choice, rand, randrange = rng.choices, rng.choice, rng.random, rng.randrange

    buf = io.StringIO()
    writer = csv_writer(buf) if dialect != "json" else None
    if dialect == "b":
        buf.write(DIALECT_B_HEADER)
    date_a = day.strftime("%d/%m/%Y")
    date_iso = day.isoformat()
    n_items = 0

    for seconds, size in zip(times, sizes):
        basket = choices(_ITEMS, k=size)
        n_items += size
        total = sum(_PRICES[i] for i in basket)
        if rand() < _ACCENTED_SHARE:
            customer = choice(ACCENTED_NAMES)
        else:
            customer = choice(customers)
        if rand() < _CARD_SHARE:
            method = "CARD"
            network = choice(CARD_NETWORKS)
            digits = str(randrange(10**15, 10**16))
        else:
            method, network, digits = "CASH", None, None
        hh, rest = divmod(seconds, 3600)
        mm, ss = divmod(rest, 60)

        if dialect == "a":
            writer.writerow(
                (
                    f"{date_a} {hh:02d}:{mm:02d}",
                    branch,
                    customer,
                    ", ".join([_A_TEXT[i] for i in basket]),
                    _short(total),
                    method,
                    digits or "",
                )
            )
        elif dialect == "b":
            writer.writerow(
                (
                    f"{date_iso} {hh:02d}:{mm:02d}:{ss:02d}",
                    branch,
                    customer,
                    ",".join([_B_TEXT[i] for i in basket]),
                    method,
                    _short(total),
                    f"{network},{_card(network, digits)}" if digits else "None",
                )
            )
        else:
            quantities = Counter(basket)  # keeps first-seen order
            sale = {
                "timestamp": f"{date_iso}T{hh:02d}:{mm:02d}:{ss:02d}",
                "branch": branch,
                "customer": customer,
                "items": [
                    {"name": MENU[i][0], "size": MENU[i][1], "price": MENU[i][2], "quantity": q}
                    for i, q in quantities.items()
                ],
                "total": f"{total:.2f}",
                "payment_method": method,
                "card_number": digits,
            }
            buf.write(json.dumps(sale, ensure_ascii=False))
            buf.write("\n")

    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
    return n_items


def _generate(
    out_dir: pathlib.Path,
    branches: int,
    days: int,
    dialect: str,
    seed: int,
    start: dt.date,
    transactions_per_day: int,
) -> tuple[list[pathlib.Path], int, int]:
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
    if branches < 0 or days < 0 or transactions_per_day < 0:
        raise ValueError("branches, days and transactions_per_day must not be negative")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    customers = _customer_pool(seed)
    extension = "json" if dialect == "json" else "csv"
    names = [branch_name(b) for b in range(branches)]
    paths: list[pathlib.Path] = []
    n_items = 0
    for d in range(days):
        day = start + dt.timedelta(days=d)
        for name in names:
            path = out_dir / f"{branch_slug(name)}_{day:%d-%m-%Y}_09-00-00.{extension}"
            n_items += _write_file(path, dialect, name, day, transactions_per_day, seed, customers)
            paths.append(path)
    return paths, len(paths) * transactions_per_day, n_items


def generate(
    out_dir: pathlib.Path,
    branches: int,
    days: int,
    dialect: str = "a",
    seed: int = 0,
    start: dt.date = dt.date(2024, 1, 1),
    transactions_per_day: int = 300,
) -> list[pathlib.Path]:
    """Write one file per branch per day into out_dir (created if missing); return their paths.

    Files come day by day, branches in BRANCH_NAMES order within a day; existing files of the same
    name are overwritten. Each file holds exactly transactions_per_day sales.
    """
    paths, _, _ = _generate(out_dir, branches, days, dialect, seed, start, transactions_per_day)
    return paths


@click.command("generate")
@click.option("--branches", type=click.IntRange(min=1), required=True, help="Number of branches.")
@click.option("--days", type=click.IntRange(min=1), required=True, help="Number of consecutive days.")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    required=True,
    help="Output directory (created if missing).",
)
@click.option("--dialect", type=click.Choice(DIALECTS), default="a", show_default=True, help="File dialect.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2024-01-01",
    show_default=True,
    help="First day (YYYY-MM-DD).",
)
@click.option(
    "--per-day",
    "per_day",
    type=click.IntRange(min=0),
    default=300,
    show_default=True,
    help="Transactions per branch per day.",
)
def generate_command(
    branches: int, days: int, out: pathlib.Path, dialect: str, seed: int, start: dt.datetime, per_day: int
) -> None:
    """Write synthetic branch till files shaped like the real ones."""
    paths, n_sales, n_items = _generate(out, branches, days, dialect, seed, start.date(), per_day)
    click.echo(f"wrote {len(paths)} files, {n_sales} transactions, {n_items} items to {out}")
