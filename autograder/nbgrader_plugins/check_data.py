"""Check data: how a hidden grade cell reports a student's results to the grader.

The kernel side is :func:`emit`. A hidden test region calls the student's functions on
fixed inputs and emits what they returned, as plain data (numbers, booleans, strings and
nested lists; never pickle), in one display output of the MIME type :data:`MIME`::

    ### BEGIN HIDDEN TESTS
    from autograder.nbgrader_plugins.check_data import emit
    emit(y_noisy=corrupt_uniform(y, 0.5, 10, seed=1)[0])
    ### END HIDDEN TESTS

The grader side (:mod:`autograder.nbgrader_plugins.outside_kernel`, in the nbgrader process) reads it
back with :func:`read_emitted` and decides the points itself: it computes the reference
values with the course library and never trusts anything else the kernel says.
This module is imported into the student's kernel, so it imports nothing heavy.
"""

from __future__ import annotations

import math

__all__ = ["MIME", "emit", "to_data", "read_emitted", "MissingCheckData"]

#: The MIME type of the one display output a hidden grade cell emits.
MIME = "application/vnd.noisylabels.check+json"
_VERSION = 1


def to_data(value):
    """``value`` as JSON data: arrays and tensors become nested lists, NumPy scalars
    Python numbers, dict keys strings; non-finite floats become ``"nan"``, ``"inf"``,
    ``"-inf"`` (JSON has no NaN)."""
    if hasattr(value, "detach"):  # a torch tensor (not imported here)
        value = value.detach().cpu()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if hasattr(value, "item"):
        return to_data(value.item())
    return str(value)


def emit(**values):
    """Display ``values`` as the cell's check data (kernel side; call once per grade cell)."""
    from IPython.display import display

    display({MIME: {"version": _VERSION, "values": to_data(values)}}, raw=True)


class MissingCheckData(Exception):
    """The grade cell emitted no check data, or not exactly one well-formed object."""


def read_emitted(cell) -> dict:
    """The ``values`` dict a grade cell emitted (grader side).

    Raises :class:`MissingCheckData` when the cell emitted none, several, or something
    that is not a ``{"version": 1, "values": {...}}`` object.
    """
    found = [out["data"][MIME] for out in cell.get("outputs", [])
             if out.get("output_type") in ("display_data", "execute_result") and MIME in out.get("data", {})]
    if not found:
        raise MissingCheckData("the hidden tests did not report any results")
    if len(found) > 1:
        raise MissingCheckData(f"the hidden tests reported {len(found)} results instead of one")
    data = found[0]
    if isinstance(data, str):  # some front ends store JSON as text
        import json

        try:
            data = json.loads(data)
        except ValueError as exc:
            raise MissingCheckData("the reported results are not valid JSON") from exc
    if not isinstance(data, dict) or data.get("version") != _VERSION or not isinstance(data.get("values"), dict):
        raise MissingCheckData("the reported results are malformed")
    return data["values"]
