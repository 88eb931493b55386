"""CSV that is safe to open in a spreadsheet: every CSV the foundry writes goes through here.

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed
is run as a formula by Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)`` in a contributor's
name would become a live link in the payout batch). Such text cells are written with a leading
single quote, as OWASP advises for CSV injection. Numbers are not text: an int (a negative amount
included) is written as the number it is, so money columns stay numeric.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value) -> str | int | Decimal:
    """One cell: numbers as numbers, dates in ISO 8601, text with formula triggers neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def write_csv(header: Iterable[str], rows: Iterable[Iterable]) -> str:
    """The whole CSV document as text, header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return buffer.getvalue()
