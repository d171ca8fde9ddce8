"""Unknown JSON fields: their names and types are kept and reported, their numbers, booleans and short
enumerated codes too; free text reaches the warehouse only for fields an admin allow-listed with
`cafeflow fields allow`, still with long numbers, e-mail addresses and the customer's name masked. Matching
field names against a list of personal-looking words cannot be complete (guest, client, payer, recipient,
holder...), so text is withheld by default instead."""
from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import text

from services.cli import main as cli
from tests.transform.helpers import load

SALE = {"timestamp": "2024-01-01T09:00:00", "branch": "Leeds", "customer": "Zoë Brontë",
        "items": [{"name": "Latte", "size": "Large", "price": "2.45", "quantity": 1}], "total": "2.45",
        "payment_method": "CARD"}
UNKNOWN = {"guest": "Zoë Brontë", "client": "Alice", "payer": "Bob Jones", "recipient": "ann@example.com",
           "loyalty": {"holder": "Zoë Brontë", "tier": "gold", "points": 120, "since": 2019, "member": True},
           "ip": "192.168.1.20", "device": {"ip": "2001:db8::1"}, "till": 7, "channel": "eat_in", "promo": True,
           "voucher": None, "code": "TILL-07", "phone": 447700900123, "ref": "4111111111111111", "zoe": "zoe",
           "note": "birthday, call 07700900123 or ann@example.com, Zoë Brontë", "tags": ["vip", "Carol Smith"]}
WITHHELD = "<text withheld>"
PERSONAL = ("Zoë", "Brontë", "Alice", "Bob Jones", "ann@example.com", "192.168", "2001:db8", "07700900123",
            "447700900123", "4111111111111111", "Carol")


def _extras(engine) -> list[dict]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT extra FROM warehouse.fact_transaction ORDER BY id"))]


def _fields(*args: str):
    return CliRunner().invoke(cli, ["fields", *args])


def test_unknown_fields_keep_names_types_numbers_and_codes_but_no_free_text(client, run_task, admin_headers, clean):
    upload = load(client, run_task, json.dumps({**SALE, **UNKNOWN}).encode(), admin_headers, "s.ndjson")
    [extra] = _extras(clean)
    assert extra == {
        "guest": WITHHELD, "client": WITHHELD, "payer": WITHHELD, "recipient": WITHHELD,
        "loyalty": {"holder": WITHHELD, "tier": "gold", "points": 120, "since": 2019, "member": True},
        "ip": WITHHELD, "device": {"ip": WITHHELD}, "till": 7, "channel": "eat_in", "promo": True, "voucher": None,
        "code": "TILL-07", "phone": "<number withheld>", "ref": WITHHELD, "zoe": WITHHELD, "note": WITHHELD,
        "tags": ["vip", WITHHELD]}
    report = upload["extra_fields"]
    assert report["fields"] == {name: 1 for name in UNKNOWN}
    assert report["types"] == {"guest": ["text"], "client": ["text"], "payer": ["text"], "recipient": ["text"],
                               "loyalty": ["object"], "ip": ["text"], "device": ["object"], "till": ["number"],
                               "channel": ["text"], "promo": ["boolean"], "voucher": ["null"], "code": ["text"],
                               "phone": ["number"], "ref": ["text"], "zoe": ["text"], "note": ["text"],
                               "tags": ["list"]}
    assert report["withheld"] == ["client", "device.ip", "guest", "ip", "loyalty.holder", "note", "payer", "phone",
                                  "recipient", "ref", "tags", "zoe"]
    dump = json.dumps(extra, ensure_ascii=False)
    assert not [secret for secret in PERSONAL if secret in dump]


def test_allow_listed_fields_keep_their_text_masked(client, run_task, admin_headers, clean):
    assert _fields("list").stdout == ""
    for name in ("note", "loyalty.holder"):
        result = _fields("allow", name)
        assert result.exit_code == 0, result.output
    assert _fields("list").stdout.splitlines() == ["loyalty.holder", "note"]
    load(client, run_task, json.dumps({**SALE, **UNKNOWN}).encode(), admin_headers, "s.ndjson")
    [extra] = _extras(clean)
    assert extra["note"] == "birthday, call <number> or <email>, <customer>"
    assert extra["loyalty"]["holder"] == "<customer>" and extra["guest"] == WITHHELD

    assert _fields("disallow", "note").exit_code == 0
    assert _fields("list").stdout.splitlines() == ["loyalty.holder"]
    later = {**SALE, **UNKNOWN, "timestamp": "2024-01-01T10:00:00"}
    load(client, run_task, json.dumps(later).encode(), admin_headers, "later.ndjson")
    assert _extras(clean)[1]["note"] == WITHHELD


def test_the_fields_command_refuses_what_it_cannot_mean(clean):
    for name in ("customer", "items.name", "", "a\tb", "x" * 201):
        result = _fields("allow", name)
        assert result.exit_code != 0 and "Error" in result.stderr, name
    missing = _fields("disallow", "never_allowed")
    assert missing.exit_code == 1 and "not allow-listed" in missing.stderr
    warned = _fields("allow", "guest_name")
    assert warned.exit_code == 0 and "personal" in warned.stderr


def test_a_card_network_is_a_known_network_never_free_text(client, run_task, admin_headers, clean):
    records = [{**SALE, "timestamp": f"2024-01-01T09:0{n}:00", "card_network": network}
               for n, network in enumerate(["visa", "Ann Lee", "American Express", "mastercard16,5105105105105100"])]
    load(client, run_task, "\n".join(map(json.dumps, records)).encode(), admin_headers, "n.ndjson")
    csv_b = ('2021-08-25 09:00:01,Leeds,A B,",Latte,2.15",CARD,2.15,"ann lee,4111111111111111"\n'
             '2021-08-25 09:00:02,Leeds,A B,",Latte,2.15",CARD,2.15,"visa16,4111111111111111"\n')
    load(client, run_task, csv_b.encode(), admin_headers, "b.csv")
    with clean.connect() as conn:
        networks = conn.execute(text("SELECT card_network FROM warehouse.fact_transaction ORDER BY id")).scalars().all()
    assert networks == ["visa", None, "americanexpress", "mastercard", None, "visa"]
