"""The one rule for CSV cells people open in a spreadsheet (services/common/spreadsheet.py), and that every
CSV the product writes for people goes through it."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from services.common.spreadsheet import csv_line, safe_cell
from tests.support import ROOT

# Writers that are not for people: the loader's COPY buffers (only PostgreSQL reads them; a `'` would
# change the data) and the helper itself.
NOT_FOR_PEOPLE = {"services/common/spreadsheet.py", "services/transform/load.py"}


def test_the_shared_rule_neutralises_text_and_keeps_numbers_as_numbers():
    assert safe_cell("-Testville") == "'-Testville" and safe_cell("\tx") == "'\tx" and safe_cell("\rx") == "'\rx"
    assert safe_cell("\uff1dSUM(1)") == "'\uff1dSUM(1)"
    assert safe_cell("Leeds") == "Leeds" and safe_cell("") == "" and safe_cell(None) is None
    assert csv_line(["-1.50", Decimal("-1.50"), -3, 2.5, True, None, dt.date(2025, 9, 1), "@x", "a,b"]) == \
        "'-1.50,-1.50,-3,2.5,True,,2025-09-01,'@x,\"a,b\""


def test_every_csv_writer_for_people_is_the_shared_one():
    builders = re.compile(r"\bcsv\.(writer|DictWriter)\(|\.to_csv\(")
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "services").rglob("*.py")
                 if builders.search(path.read_text()) and str(path.relative_to(ROOT)) not in NOT_FOR_PEOPLE]
    assert offenders == [], "write CSV for people through services.common.spreadsheet"
