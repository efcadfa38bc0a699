"""How a notebook states the result it asserted, for ``noisylabels build``'s table.

Every lesson and solution ends with cells that assert its result and then call
:func:`report_result` with one line saying what was shown.
"""

RESULT_MARKER = "NOISYLABELS RESULT:"

__all__ = ["RESULT_MARKER", "report_result"]


def report_result(message: str) -> str:
    """Print ``message`` after the result marker that ``noisylabels build`` collects."""
    line = " ".join(str(message).split())
    print(f"{RESULT_MARKER} {line}")
    return line
