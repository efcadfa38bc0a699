"""Grade cells graded in the nbgrader process, outside the student's kernel.

nbgrader decides a grade cell's points from what the cell printed in the student's own
kernel, where an added cell can redefine any function, ``assert`` helper or library
routine the tests use. :class:`GradeOutsideKernel` is an nbgrader preprocessor that runs
during ``nbgrader autograde`` *after* the notebook has executed (after ``LimitOutput``,
before ``SaveAutoGrades``). For every grade cell that a grader function is registered
for, it calls that function in the nbgrader process and **replaces** the cell's outputs by

- a ``stdout`` stream with the feedback text, and
- an ``execute_result`` holding the points (nbgrader's partial credit: the value of the
  last ``execute_result``, capped at the cell's points),

so ``SaveAutoGrades`` records what the grader decided, whatever the kernel printed.

A grader function takes a :class:`GradingContext` and returns a :class:`CellGrade`::

    @register("hw01_label_corruption", "test_corrupt_uniform_shapes")
    def grade_shapes(ctx: GradingContext) -> CellGrade:
        values = check_values(ctx)          # what the hidden cell emitted (untrusted data)
        require(values["y"] == [...], "corrupt_uniform must not modify y")
        return full_marks(ctx)

The module lists the grader modules to import in the trait ``grader_modules``
(``nbgrader_config.py``). Helpers for grader functions: :func:`check_values` (the cell's
emitted data, see :mod:`autograder.nbgrader_plugins.check_data`), :func:`require` and :class:`CheckFailed`
(an instructor's message; 0 points), :func:`full_marks`, :func:`as_array`.
If a grader function raises :class:`CheckFailed` or finds missing or malformed data, the
cell gets 0 points and a message; any other exception also gives 0 points, with a
message, and is logged as an error for the instructor.

A reference value that is the same for every submission of an assignment (a baseline the
grader trains itself, say) is computed once with :func:`once_per_assignment`: once per
nbgrader process, and once per class when ``noisylabels autograde`` grades students in
parallel processes (it names a run's cache folder in :data:`REFERENCE_CACHE_ENV`).
"""

from __future__ import annotations

import copy
import fcntl
import functools
import hashlib
import importlib
import json
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List, Unicode

from autograder.nbgrader_plugins.check_data import MissingCheckData, read_emitted

__all__ = [
    "GradingContext", "CellGrade", "register", "registered", "GradeOutsideKernel",
    "CheckFailed", "GraderProblem", "require", "check_values", "full_marks", "as_array", "as_tensor", "kernel_error",
    "REFERENCE_CACHE_ENV", "once_per_assignment",
]


@dataclass
class GradingContext:
    """What a grader function is given for one grade cell of one submission."""

    assignment_id: str
    student_id: str
    grade_id: str
    notebook_dir: Path       # the autograded/<student>/<assignment> folder
    submitted_dir: Path      # the pristine submitted/<student>/<assignment> folder (as collected)
    course_root: Path
    cell: nbformat.NotebookNode  # the grade cell after execution (its outputs are untrusted)
    max_points: float


@dataclass
class CellGrade:
    """A grader function's decision: points (0 to the cell's points) and feedback text."""

    points: float
    feedback: str


GraderFunction = Callable[[GradingContext], CellGrade]
_REGISTRY: dict[tuple[str, str], GraderFunction] = {}


def register(assignment_id: str, grade_id: str):
    """Decorator: grade the cell ``grade_id`` of ``assignment_id`` with the decorated
    function ``func(ctx: GradingContext) -> CellGrade`` (outside the student's kernel)."""

    def decorate(func: GraderFunction) -> GraderFunction:
        key = (assignment_id, grade_id)
        if key in _REGISTRY and _REGISTRY[key] is not func:
            raise ValueError(f"a grader is already registered for {assignment_id}/{grade_id}")
        _REGISTRY[key] = func
        return func

    return decorate


def registered(assignment_id: str | None = None) -> dict[tuple[str, str], GraderFunction]:
    """The registered grader functions (of one assignment, if given)."""
    return {k: f for k, f in _REGISTRY.items() if assignment_id is None or k[0] == assignment_id}


# ----------------------------------------------------------------------------- helpers for graders
class GraderProblem(Exception):
    """A problem of the grader's own (e.g. missing final data): the submission's autograde
    fails with this message and nothing is recorded for it; never a student's 0."""


class CheckFailed(Exception):
    """A check failed: the message is the feedback the student sees; the cell gets 0 points."""


def require(condition, message: str = "") -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition`` holds."""
    if not bool(condition):
        raise CheckFailed(message or "a hidden test failed")


def kernel_error(cell) -> str | None:
    """``"ExceptionName: message"`` of the first error the cell raised in the kernel, if any
    (for feedback only: it comes from the student's kernel)."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            name, value = out.get("ename", "Error"), out.get("evalue", "")
            return f"{name}: {value}" if value else name
    return None


def check_values(ctx: GradingContext) -> dict:
    """The data the grade cell emitted. If there is none (the cell failed before its hidden
    tests ran, say), raise :class:`CheckFailed` with the kernel's error message."""
    try:
        return read_emitted(ctx.cell)
    except MissingCheckData as exc:
        error = kernel_error(ctx.cell)
        if error:
            raise CheckFailed(error) from None
        raise CheckFailed(f"{exc}; did the cell run to the end?") from None


def as_array(value, dtype=None):
    """Emitted data as a NumPy array (``"nan"``/``"inf"`` strings become floats)."""
    import numpy as np

    return np.asarray(value, dtype=dtype) if dtype is not None else np.asarray(value)


def as_tensor(values, key: str, shape=None):
    """``values[key]`` (emitted data) as a float64 torch tensor; :class:`CheckFailed` saying why not."""
    import torch

    value = values.get(key) if isinstance(values, dict) else None
    require(value is not None, f"{key}: no value was reported")
    try:
        tensor = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError) as exc:
        raise CheckFailed(f"{key}: not a number or a tensor of numbers") from exc
    if shape is not None:
        require(tuple(tensor.shape) == tuple(shape),
                f"{key} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
    return tensor


def full_marks(ctx: GradingContext, feedback: str = "All tests passed.") -> CellGrade:
    return CellGrade(ctx.max_points, feedback)


#: A folder (the grader's only) where :func:`once_per_assignment` shares values between the
#: processes grading one class; set by ``noisylabels autograde`` for one run, then removed.
REFERENCE_CACHE_ENV = "NOISYLABELS_REFERENCE_CACHE"


def once_per_assignment(func):
    """Decorator: ``func(*args)`` is a reference value that does not depend on the submission
    (JSON-able; hashable arguments). Computed once per process, and, where
    :data:`REFERENCE_CACHE_ENV` names a folder, once for all the processes sharing it: the
    first computes under a file lock, the others wait and read its file. The key holds the
    function, its arguments and ``NOISYLABELS_SIZE``; the folder lives for one class run, so
    a changed library or grader is never answered from an old value."""

    @functools.lru_cache(maxsize=8)
    def cached(*args):
        folder = os.environ.get(REFERENCE_CACHE_ENV)
        if not folder:
            return func(*args)
        key = json.dumps([func.__module__, func.__qualname__, repr(args), os.environ.get("NOISYLABELS_SIZE", "")])
        path = Path(folder) / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")
        fd = os.open(path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one process computes, the others wait for its file
            try:
                stored = json.loads(path.read_text())
                if stored.get("key") == key:
                    return stored["value"]
            except (OSError, ValueError, AttributeError):
                pass
            value = func(*args)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": key, "value": value}))
            os.replace(tmp, path)
            return value
        finally:
            os.close(fd)

    return functools.wraps(func)(cached)


# ----------------------------------------------------------------------------- the preprocessor
class GradeOutsideKernel(NbGraderPreprocessor):
    """Replace the outputs of registered grade cells by the points and feedback that their
    grader functions compute in the nbgrader process (see the module docstring)."""

    grader_modules = List(
        Unicode(), default_value=[],
        help="Modules to import so that their @register calls run (e.g. 'autograder.nbgrader_plugins.hw01_grading').",
    ).tag(config=True)

    def _import_graders(self) -> None:
        for name in self.grader_modules:
            importlib.import_module(name)  # an import error fails the autograde loudly

    def preprocess(self, nb, resources):
        self._import_graders()
        info = resources["nbgrader"]
        self._assignment = info["assignment"]
        self._student = info["student"]
        coursedir = CourseDirectory(config=self.config)
        self._course_root = Path(coursedir.root)
        self._submitted_dir = Path(coursedir.format_path(coursedir.submitted_directory, self._student, self._assignment))
        path = resources.get("metadata", {}).get("path")
        self._notebook_dir = Path(path) if path else Path(
            coursedir.format_path(coursedir.autograded_directory, self._student, self._assignment))
        graders = registered(self._assignment)
        if graders:
            present = {c.metadata.nbgrader.get("grade_id") for c in nb.cells if utils.is_grade(c)}
            for cell in nb.cells:
                if utils.is_grade(cell) and cell.cell_type == "code" \
                        and (self._assignment, cell.metadata.nbgrader["grade_id"]) not in graders:
                    self.log.warning("Grade cell %s of %s has no outside-kernel grader: its points "
                                     "come from the student's kernel", cell.metadata.nbgrader["grade_id"],
                                     self._assignment)
            for (_, grade_id) in graders:
                if grade_id not in present:
                    self.log.warning("Grade cell %s of %s is missing from %s's notebook",
                                     grade_id, self._assignment, self._student)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if not utils.is_grade(cell) or cell.cell_type != "code":
            return cell, resources
        grade_id = cell.metadata.nbgrader["grade_id"]
        func = _REGISTRY.get((self._assignment, grade_id))
        if func is None:
            return cell, resources
        max_points = float(cell.metadata.nbgrader["points"])
        ctx = GradingContext(
            assignment_id=self._assignment, student_id=self._student, grade_id=grade_id,
            notebook_dir=self._notebook_dir, submitted_dir=self._submitted_dir,
            course_root=self._course_root, cell=copy.deepcopy(cell), max_points=max_points,
        )
        try:
            grade = func(ctx)
            if not isinstance(grade, CellGrade):
                raise TypeError(f"grader returned {type(grade).__name__}, not CellGrade")
        except CheckFailed as exc:
            grade = CellGrade(0.0, str(exc))
        except GraderProblem:
            raise
        except Exception:
            self.log.warning("Grader %s for %s/%s (student %s) could not check the reported results; "
                             "the cell gets 0 points:\n%s",
                           getattr(func, "__name__", func), self._assignment, grade_id, self._student,
                           traceback.format_exc())
            grade = CellGrade(0.0, "The results this cell reported could not be checked "
                                   "(missing or malformed); 0 points.")
        points = min(max(float(grade.points), 0.0), max_points)
        text = f"{grade.feedback.rstrip()}\nPoints: {points:g} / {max_points:g} (graded outside your notebook)\n"
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text=text),
            nbformat.v4.new_output("execute_result", data={"text/plain": repr(points)},
                                   execution_count=cell.get("execution_count")),
        ]
        return cell, resources
