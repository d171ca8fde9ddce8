"""Must-show 5: every kind of field mess is loaded correctly or rejected with a reason; a garbage
file ends `failed` with a readable error; no request gets a 5xx."""
from __future__ import annotations

from decimal import Decimal

from tests.transform.helpers import load, post, rejections, scalar

GOOD = ('25/08/2021 09:00,Leeds,Thomas Douglas,"Regular Chai latte - 2.30, Large Iced americano - 2.50",'
        '4.8,CASH,\n'
        '25/08/2021 09:01,Leeds,Angelia Mills,"Large Hot Chocolate - 1.70, Large Filter coffee - 1.80",3.5,CARD,'
        '7789883645846795\n')


def test_crlf_bom_and_blank_lines_load(client, run_task, admin_headers, clean):
    content = b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n\r\n").encode()
    upload = load(client, run_task, content, admin_headers)
    assert (upload["status"], upload["rows_loaded"], upload["rows_rejected"]) == ("loaded", 2, 0)
    assert scalar(clean, "SELECT sum(total) FROM warehouse.fact_transaction") == Decimal("8.30")


def test_truncated_last_line_is_rejected_and_the_rest_loads(client, run_task, admin_headers, clean):
    content = (GOOD + '25/08/2021 09:02,Leeds,Ann Lee,"Large Latte - 2.45, Regu').encode()
    upload = load(client, run_task, content, admin_headers)
    assert (upload["status"], upload["rows_loaded"], upload["rows_rejected"]) == ("loaded", 2, 1)
    [rejection] = rejections(client, upload["id"], admin_headers)
    assert rejection["line_no"] == 3
    assert "Ann Lee" not in rejection["row"]


def test_total_must_match_the_basket_within_a_penny(client, run_task, admin_headers, clean):
    content = ('25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.31,CASH,\n'
               '25/08/2021 09:01,Leeds,C D,"Regular Chai latte - 2.30",2.50,CASH,\n').encode()
    upload = load(client, run_task, content, admin_headers)
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (1, 1)
    [rejection] = rejections(client, upload["id"], admin_headers)
    assert rejection["code"] == "total_mismatch" and rejection["line_no"] == 2
    assert "2.30" in rejection["reason"] and "2.50" in rejection["row"]   # the paid total shows in the row
    # The paid total is what is kept.
    assert scalar(clean, "SELECT total FROM warehouse.fact_transaction") == Decimal("2.31")


def test_card_number_mangled_by_a_spreadsheet_still_loads(client, run_task, admin_headers, clean):
    content = b'25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CARD,5.49E+15\n'
    upload = load(client, run_task, content, admin_headers)
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (1, 0)
    assert scalar(clean, "SELECT payment_method FROM warehouse.fact_transaction") == "CARD"


def test_accented_names_are_the_same_customer_in_utf8_and_cp1252(client, run_task, admin_headers, clean):
    row = '25/08/2021 09:0{m},Leeds,Zoë Brontë,"Regular Chai latte - 2.30",2.30,CASH,\n'
    load(client, run_task, row.format(m=0).encode("utf-8"), admin_headers)
    upload = load(client, run_task, row.format(m=1).encode("cp1252"), admin_headers, "latin.csv")
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (1, 0)
    assert scalar(clean, "SELECT count(DISTINCT customer_key) FROM warehouse.fact_transaction") == 1
    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction") == 2


def test_formula_cells(client, run_task, admin_headers, clean):
    content = ('25/08/2021 09:00,Leeds,=cmd|calc,"Regular Chai latte - 2.30",2.30,CASH,\n'
               '25/08/2021 09:01,Leeds,A B,"=HYPERLINK(""http://x"") - 2.30",2.30,CASH,\n'
               '25/08/2021 09:02,=Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n').encode()
    upload = load(client, run_task, content, admin_headers)
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (1, 2)   # a formula-like name is just a name
    assert {r["code"] for r in rejections(client, upload["id"], admin_headers)} == {"formula_cell"}


def test_a_month_file_loads_every_day(client, run_task, admin_headers, clean):
    rows = "".join(f'{day:02d}/08/2021 10:00,Leeds,Customer {day},"Large Latte - 2.45",2.45,CARD,\n'
                   for day in range(1, 32))
    upload = load(client, run_task, rows.encode(), admin_headers, "leeds-august.csv")
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (31, 0)
    assert scalar(clean, "SELECT count(DISTINCT local_date) FROM warehouse.rollup_sales_hour") == 31


def test_bad_values_are_rejected_with_reasons(client, run_task, admin_headers, clean):
    content = ('31/02/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'
               '25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,BITCOIN,\n'
               '25/08/2099 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'
               '25/08/2021 09:00,,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'
               '25/08/2021 09:00,Leeds,A B,"Regular Chai latte - two",2.30,CASH,\n'
               '25/08/2021 09:00,Leeds,A B,,0,CASH,\n'
               '25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",abc,CASH,\n'
               '25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30\n').encode()
    upload = load(client, run_task, content, admin_headers)
    assert (upload["status"], upload["rows_loaded"], upload["rows_rejected"]) == ("loaded", 0, 8)
    found = {r["line_no"]: r["code"] for r in rejections(client, upload["id"], admin_headers)}
    assert found == {1: "bad_timestamp", 2: "bad_payment", 3: "future_timestamp", 4: "missing_branch",
                     5: "bad_number", 6: "empty_basket", 7: "bad_number", 8: "wrong_field_count"}


def test_dialect_b_with_lying_headers_and_oneside_items(client, run_task, admin_headers, clean):
    content = ("timestamp,branch,custumer,basket,method,price,card\n"
               "timestamp,branch,custumer,basket,price,method,card\n"
               '2021-02-23 09:00:48,Isle of Wight,Morgan Berka,"Large,Hot chocolate,2.9,,Glass of milk,0.7",'
               'CASH,3.6,None\n'
               '2021-02-23 09:01:45,Isle of Wight,William Perdomo,",Flavoured iced latte - Hazelnut,2.75",'
               '2.75,CARD,"visa16,4111111111111111"\n').encode()
    upload = load(client, run_task, content, admin_headers)
    assert (upload["dialect"], upload["rows_loaded"], upload["rows_rejected"]) == ("b", 2, 0)
    assert scalar(clean, "SELECT card_network FROM warehouse.fact_transaction WHERE card_network IS NOT NULL") \
        == "visa"
    assert scalar(clean, "SELECT flavour FROM warehouse.dim_product WHERE name = 'Flavoured iced latte'") \
        == "Hazelnut"


def test_a_spreadsheet_header_in_any_wording_is_a_header_not_a_rejected_row(client, run_task, admin_headers,
                                                                            clean):
    content = ("Date,Store,Customer Name,Items,Total,Payment,Card Number\n"
               '25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'
               "Time & date , Branch , Customer , Basket , Amount (GBP), Method , Card\n"    # repeated mid-file
               '25/08/2021 09:01,Leeds,C D,"Regular Chai latte - 2.30",2.30,CASH,\n'
               "order date,shop,,basket,total,cash or card,\n").encode()
    upload = load(client, run_task, content, admin_headers)
    assert (upload["status"], upload["rows_loaded"], upload["rows_rejected"]) == ("loaded", 2, 0)


def test_products_match_ignoring_case_and_spacing(client, run_task, admin_headers, clean):
    content = ('25/08/2021 09:00,Leeds,A B,"Large Hot Chocolate - 1.70",1.70,CASH,\n'
               '25/08/2021 09:01,Leeds,A B,"large  hot chocolate - 2.90",2.90,CASH,\n'
               '25/08/2021 09:02,Leeds,A B,"Regular Flavoured latte - Hazelnut - 2.55",2.55,CASH,\n').encode()
    load(client, run_task, content, admin_headers)
    assert scalar(clean, "SELECT count(*) FROM warehouse.dim_product") == 2
    assert scalar(clean, "SELECT count(*) FROM warehouse.dim_product WHERE name = 'Flavoured latte' "
                         "AND size = 'Regular' AND flavour = 'Hazelnut'") == 1


def test_garbage_text_file_fails_with_a_readable_error(client, run_task, admin_headers, clean):
    upload = load(client, run_task, b"hello, this is a shopping list\neggs, milk\n", admin_headers)
    assert upload["status"] == "failed"
    assert "no line of the file looks like a sales row" in upload["error"]
    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction") == 0


def test_headers_only_file_fails(client, run_task, admin_headers, clean):
    upload = load(client, run_task, b"timestamp,branch,custumer,basket,price,method,card\n", admin_headers)
    assert upload["status"] == "failed" and "no sales rows" in upload["error"]


def test_binary_and_not_csv_files_are_refused(client, admin_headers, clean):
    assert post(client, b"\x89PNG\r\n\x1a\n" + bytes(range(256)), admin_headers).status_code == 415
    assert post(client, b"PK\x03\x04zipfile", admin_headers).status_code == 415
    assert post(client, b"just some words without any structure\n", admin_headers).status_code == 415
    assert post(client, b"", admin_headers).status_code == 422
    assert post(client, b"\n\n  \n", admin_headers).status_code == 422


def test_wrong_branch_rows_are_rejected_for_a_branch_token(client, run_task, clean, branch_token):
    chesterfield = {"Authorization": f"Bearer {branch_token('Chesterfield')}"}
    upload = load(client, run_task, GOOD.encode(), chesterfield)
    assert (upload["status"], upload["rows_loaded"], upload["rows_rejected"]) == ("loaded", 0, 2)
    assert {r["code"] for r in rejections(client, upload["id"], chesterfield)} == {"wrong_branch"}
    # The same bytes from Leeds are Leeds's own upload, not Chesterfield's rejected one.
    leeds = {"Authorization": f"Bearer {branch_token('leeds')}"}
    response = post(client, GOOD.encode(), leeds, "leeds.csv")
    assert response.status_code == 202 and response.get_json()["id"] != upload["id"]
    run_task("transform.process_upload", response.get_json()["id"])
    mine = client.get(response.get_json()["status_url"], headers=leeds).get_json()
    assert (mine["branch"], mine["rows_loaded"], mine["rows_rejected"]) == ("Leeds", 2, 0)


def test_admin_rows_for_unregistered_branches_are_rejected(client, run_task, admin_headers, clean):
    content = GOOD.replace("Leeds", "Leds").encode()            # a typo is not a new branch
    upload = load(client, run_task, content, admin_headers)
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (0, 2)
    assert {r["code"] for r in rejections(client, upload["id"], admin_headers)} == {"unknown_branch"}
    assert scalar(clean, "SELECT count(*) FROM warehouse.dim_branch") == 0


def test_rejected_rows_never_show_names_or_card_numbers(client, run_task, admin_headers, clean):
    content = ('25/08/2021 09:00,Leeds,Thomas Douglas,"Regular Chai latte - 2.30",9.99,CARD,7789883645846795\n'
               '25/08/2021 09:01,Leeds,Angelia Mills,7789883645846795\n').encode()
    upload = load(client, run_task, content, admin_headers)
    shown = str(rejections(client, upload["id"], admin_headers))
    assert upload["rows_rejected"] == 2
    for secret in ("Thomas", "Douglas", "Angelia", "Mills", "7789883645846795"):
        assert secret not in shown
