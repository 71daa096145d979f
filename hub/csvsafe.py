"""CSV that spreadsheets read as data, never as formulas (OWASP "CSV injection"): every export uses it.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so that a
team named `=HYPERLINK(...)` or `-2+3` is shown as written and never evaluated. Numbers that the platform
itself writes (int, float, Decimal, e.g. a correction's negative amount) are written as numbers: a plain
numeric literal is no formula, and a statement must stay summable in a spreadsheet.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """The value as it goes into a cell: text that a spreadsheet would run as a formula is neutralised."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def to_csv(header: Sequence[Any], rows: Iterable[Sequence[Any]], *, bom: bool = False,
           lineterminator: str = "\r\n") -> str:
    """A whole CSV document with every cell (the header too) passed through cell()."""
    buf = io.StringIO()
    if bom:
        buf.write("\ufeff")  # so that spreadsheet programs read Chinese text as UTF-8
    writer = csv.writer(buf, lineterminator=lineterminator)
    writer.writerow([cell(c) for c in header])
    for row in rows:
        writer.writerow([cell(c) for c in row])
    return buf.getvalue()
