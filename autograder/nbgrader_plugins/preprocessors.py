"""nbgrader preprocessors of the course (configured in ``nbgrader_config.py``).

- :class:`OverwriteCellsExpectingHiddenTests` (autograde): nbgrader's ``OverwriteCells``
  without the false alarm. The gradebook holds each locked test cell *with* its hidden
  tests, the student's copy holds it *without* them, so plain ``OverwriteCells`` warns
  ``Attribute 'checksum' for cell ... has changed!`` for every such cell of every honest
  submission. This one restores the hidden tests silently when the student's cell is
  exactly the released version, and still warns (and restores the cell) when a locked
  cell was edited.
- :class:`HideHiddenTestsInFeedback` (generate_feedback): removes what would show hidden
  test code in the feedback (see its docstring); it also clears the hidden regions from
  the cell sources, as nbgrader's ``ClearHiddenTests`` does.
"""

from __future__ import annotations

import copy
import re

from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, OverwriteCells
from nbgrader.api import MissingEntry

from autograder.nbgrader_plugins.check_data import MIME

__all__ = ["OverwriteCellsExpectingHiddenTests", "HideHiddenTestsInFeedback", "hidden_lines"]

_BEGIN, _END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _released_source(source: str) -> str:
    """``source`` as ``generate_assignment`` releases it: hidden test regions removed."""
    cell = {"source": source}
    from nbformat import NotebookNode

    cell = NotebookNode(cell)
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source


class OverwriteCellsExpectingHiddenTests(OverwriteCells):
    """``OverwriteCells`` that does not report a released cell's missing hidden tests as a change."""

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                source_cell = None
            if source_cell is not None and source_cell.locked and _BEGIN in source_cell.source \
                    and cell.source == _released_source(source_cell.source):
                cell.source = source_cell.source  # the released cell, untouched: put the hidden tests back
        return super().preprocess_cell(cell, resources, cell_index)


def hidden_lines(source: str) -> list[str]:
    """The stripped, non-empty lines inside the hidden test regions of ``source``."""
    lines, inside = [], False
    for line in source.split("\n"):
        if _BEGIN in line:
            inside = True
        elif _END in line:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


class HideHiddenTestsInFeedback(NbGraderPreprocessor):
    """Keep hidden tests hidden in ``nbgrader generate_feedback``.

    For every cell that held hidden tests: each error output keeps only
    ``ExceptionName: message`` (the instructor's assertion message), without the
    traceback and the source lines it quotes; the check data the hidden tests emitted
    (:data:`autograder.nbgrader_plugins.check_data.MIME`) is removed; the hidden regions are cleared from
    the source. In every other cell, traceback lines that quote a hidden line (a function
    defined in hidden tests and called later, say) are removed. Run it instead of (or
    before) nbgrader's ``ClearHiddenTests``.
    """

    def preprocess(self, nb, resources):
        self._hidden = set()
        for cell in nb.cells:
            if cell.cell_type == "code":
                self._hidden.update(hidden_lines(cell.source))
        return super().preprocess(nb, resources)

    def _quotes_hidden(self, line: str) -> bool:
        text = _ANSI.sub("", line)
        for part in text.split("\n"):
            body = re.sub(r"^\s*(-*>\s*)?\d+\s", "", part).strip()
            if body and (body in self._hidden or any(h in body for h in self._hidden if len(h) >= 12)):
                return True
        return False

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            if _BEGIN in cell.get("source", ""):
                cell.source = _released_source(cell.source)
            return cell, resources
        had_hidden = _BEGIN in cell.source
        outputs = []
        for out in cell.get("outputs", []):
            out = copy.deepcopy(out)
            if out.get("output_type") == "error":
                if had_hidden:
                    value = out.get("evalue", "")
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {value}" if value else out.get("ename", "Error")]
                else:
                    out["traceback"] = [line for line in out.get("traceback", []) if not self._quotes_hidden(line)]
            if had_hidden and MIME in out.get("data", {}):
                continue
            outputs.append(out)
        cell.outputs = outputs
        if had_hidden:
            cell.source = _released_source(cell.source)
        return cell, resources
