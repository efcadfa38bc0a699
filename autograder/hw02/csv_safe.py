"""CSV cells a spreadsheet shows as text: OWASP's rule against CSV (formula) injection.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by spreadsheet programs (``=HYPERLINK(...)`` in a student's Aid would become a
link); :func:`csv_safe` prefixes such a cell with a single quote. Used by every CSV the
grading writes from student-controlled text (``similarity.csv``, the grades CSV).
"""

from __future__ import annotations

__all__ = ["FORMULA_STARTS", "csv_safe", "csv_safe_row"]

#: What a spreadsheet may read as the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    """``value`` as CSV cell text, prefixed with ``'`` when it would start a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_safe_row(row: dict) -> dict:
    """Every cell of a ``csv.DictWriter`` row made safe with :func:`csv_safe`."""
    return {key: csv_safe(value) for key, value in row.items()}
