"""Property tests of the parser: valid sales round-trip exactly; arbitrary bytes never crash it."""
from __future__ import annotations

import csv
import dataclasses
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.tools.generate import MENU
from services.transform.parse import iter_records
from services.transform.records import ParseStats, Rejection, Sale
from services.transform.sale_builder import SaleBuilder

SECRET = "property-test-secret-0123456789abcdef"
SIZED = [entry for entry in MENU if entry[1]]
names = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzÀÉÏÕÜàéïõüçñ' ,\"-"), min_size=3,
                max_size=30).filter(lambda n: n.strip(" ,\"-'") and any(c.isalpha() for c in n))
sales = st.fixed_dictionaries({
    "day": st.integers(1, 28), "month": st.integers(1, 12), "hour": st.integers(7, 19),
    "minute": st.integers(0, 59), "branch": st.sampled_from(["Leeds", "London Soho", "Isle of Wight"]),
    "customer": names, "items": st.lists(st.sampled_from(SIZED), min_size=1, max_size=6),
    "card": st.booleans(),
})


def dialect_a(sale: dict) -> str:
    basket = ", ".join(f"{size} {name} - {price}" for name, size, price in sale["items"])
    total = sum(int(price.replace(".", "")) for _n, _s, price in sale["items"])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([
        f"{sale['day']:02d}/{sale['month']:02d}/2022 {sale['hour']:02d}:{sale['minute']:02d}", sale["branch"],
        sale["customer"], basket, f"{total // 100}.{total % 100:02d}", "CARD" if sale["card"] else "CASH",
        "4111111111111111" if sale["card"] else ""])
    return buffer.getvalue()


def parse(data: bytes) -> list:
    builder = SaleBuilder(SECRET, expected_branch_key=None,
                          registered_branch_keys={"leeds", "london soho", "isle of wight"})
    return list(iter_records(builder, [data], ParseStats()))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(sales)
def test_valid_dialect_a_rows_round_trip(sale):
    [parsed] = parse(dialect_a(sale).encode())
    assert isinstance(parsed, Sale), parsed
    assert parsed.total_pence == sum(int(price.replace(".", "")) for _n, _s, price in sale["items"])
    assert [item.product.size for item in parsed.items] == [size for _n, size, _p in sale["items"]]
    assert parsed.payment_method == ("CARD" if sale["card"] else "CASH")
    assert parsed.customer_key is not None
    assert sale["customer"] not in {str(getattr(parsed, f.name)) for f in dataclasses.fields(parsed)}


@settings(max_examples=200)
@given(sales)
def test_reencoding_keeps_the_sale_identity(sale):
    text = dialect_a(sale)
    [plain] = parse(text.encode())
    [crlf_bom] = parse(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    [latin] = parse(text.encode("cp1252", errors="ignore")) if _cp1252_safe(text) else [plain]
    assert plain.content_key == crlf_bom.content_key == latin.content_key
    assert plain.customer_key == crlf_bom.customer_key


def _cp1252_safe(text: str) -> bool:
    try:
        text.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return False


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600) | st.text(max_size=400).map(str.encode))
def test_arbitrary_input_never_raises(data):
    for record in parse(data):
        assert isinstance(record, (Sale, Rejection))
        if isinstance(record, Rejection):
            assert record.reason and record.code and len(record.masked_row) <= 500


@settings(max_examples=200)
@given(sales)
def test_rejected_rows_never_show_the_customer_or_card(sale):
    row = dialect_a(sale).replace("CARD", "BITCOIN").replace("CASH", "BITCOIN")
    [rejection] = parse(row.encode())
    assert isinstance(rejection, Rejection) and rejection.code == "bad_payment"
    assert "4111111111111111" not in rejection.masked_row
    assert "<customer>" in rejection.masked_row
