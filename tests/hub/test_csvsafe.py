"""The one CSV helper: formula triggers are neutralised, the platform's numbers stay numbers."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from hub.csvsafe import cell, to_csv


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x")', "-2+3", "+1", "@SUM(A1)", "\t=1", "\r=1"])
def test_text_that_a_spreadsheet_would_run_gets_a_leading_apostrophe(text):
    assert cell(text) == "'" + text


@pytest.mark.parametrize("value", ["甲队", "2026-03-02T01:00:00Z", "", " =x", 12, -3, -36.5, Decimal("-36.00"), None])
def test_everything_else_is_written_as_it_is(value):
    assert cell(value) == value


def test_a_document_reads_back_with_the_names_as_text_and_amounts_as_numbers():
    body = to_csv(["team", "amount"], [['=HYPERLINK("http://x")', Decimal("-36.00")], ["-2+3", 5]], bom=True)
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows == [["team", "amount"], ["'=HYPERLINK(\"http://x\")", "-36.00"], ["'-2+3", "5"]]
