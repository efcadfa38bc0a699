"""Results: the records a training run or a sweep returns, and the line a notebook reports.

:class:`Results` is the one record type of the library (``fit``'s ``History``,
``corruption_sweep``'s ``CorruptionCurve``, ``train_grokking``'s ``GrokkingLog``), introduced
in lesson 01. Every lesson and solution ends with cells that assert its result and then
call :func:`report_result` with one line saying what was shown.

Spreads over seeds are written one way across the course: :func:`mean_and_spread` gives the
mean and the *sample* standard deviation (``ddof=1``, 0 for a single value), and
:func:`format_spread` prints them as ``0.905 ± 0.006``.
"""

import numpy as np

RESULT_MARKER = "NOISYLABELS RESULT:"

__all__ = ["RESULT_MARKER", "Results", "format_spread", "mean_and_spread", "report_result"]


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


def mean_and_spread(values, axis=0):
    """Mean and sample standard deviation (``ddof=1``) of ``values`` over ``axis`` (the seeds).

    The course's one convention for "mean ± spread" (lesson 01 on). With a single value the
    spread is 0 (one seed shows no spread), never NaN.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("mean_and_spread needs at least one value")
    mean = values.mean(axis=axis)
    if values.shape[axis] < 2:
        return mean, np.zeros_like(mean)
    return mean, values.std(axis=axis, ddof=1)


def format_spread(values, digits: int = 3) -> str:
    """``values`` (one per seed) as ``"mean ± sd"`` with :func:`mean_and_spread`'s convention."""
    mean, spread = mean_and_spread(np.ravel(values))
    return f"{float(mean):.{digits}f} ± {float(spread):.{digits}f}"
