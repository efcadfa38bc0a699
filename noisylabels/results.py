"""Results: the records a training run or a sweep returns, and the line a notebook reports.

:class:`Results` is the one record type of the library (``fit``'s ``History``,
``corruption_sweep``'s ``CorruptionCurve``, ``train_grokking``'s ``GrokkingLog``), introduced
in lesson 01. Every lesson and solution ends with cells that assert its result and then
call :func:`report_result` with one line saying what was shown.
"""

RESULT_MARKER = "NOISYLABELS RESULT:"

__all__ = ["RESULT_MARKER", "Results", "report_result"]


class Results(dict):
    """Lists of records by name, whose keys read as attributes too: ``history.test_acc[-1]``.

    Lesson 01 introduces it (``nl.fit`` returns one).
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def first_reached(self, key: str, threshold: float, at: str):
        """The entry of ``at`` at the first record whose ``key`` reached ``threshold``, else None."""
        for when, value in zip(self[at], self[key]):
            if value >= threshold:
                return when
        return None


def report_result(message: str) -> str:
    """Print ``message`` after the result marker that ``noisylabels build`` collects (every lesson's last cell)."""
    line = " ".join(str(message).split())
    print(f"{RESULT_MARKER} {line}")
    return line
