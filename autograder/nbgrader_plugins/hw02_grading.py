"""Homework 2's points, computed in the nbgrader process by the sandboxed grader.

Registered with :mod:`autograder.nbgrader_plugins.outside_kernel` (``nbgrader_config.py`` lists this
module in ``GradeOutsideKernel.grader_modules``). Both grade cells of
``hw02_evil_twins.ipynb`` get their points here, never from the student's kernel:

- ``test_debugging`` (10 points): the submitted ``hw02.py`` (from ``submitted/``, as
  collected) runs in the sandbox on Part 1's secret file, made by ``make-final`` like the
  released debugging file (165 digits, 15 exact evil twins) and under the same names
  (``bad_digits_ubyte.gz``, ``bad_labels_ubyte.gz``): a program cannot tell them apart
  by name, and the released file's public key earns nothing; at most 3 errors earn the
  points. A final folder without it (an older ``make-final``) stops the autograde;
- ``test_final`` (90 points): it runs on every final set of the instructor's private folder
  (:func:`autograder.hw02.data.load_final_sets`, ``instructor/hw02_evil_twins``);
  the points are ``90 * score / 100``. The feedback gives errors, missed twins, wrong
  flags, the score and the author-block check, never the key. Missing final data stops
  the autograde with the reason (:class:`~autograder.nbgrader_plugins.outside_kernel.GraderProblem`);
  it is never recorded as the student's 0.
"""

from __future__ import annotations

from pathlib import Path

from autograder.hw02.author_block import check_author_block
from autograder.hw02.data import load_debugging_set, load_final_sets
from autograder.hw02.rules import (FREE_ERRORS, HW02, MAX_PROGRAM_BYTES, count_errors, course_helpers,
                         grade_submission, score_errors)
from autograder.nbgrader_plugins.outside_kernel import CellGrade, GraderProblem, GradingContext, register
from autograder.submission import SubmissionRefused, escape_control, read_regular_file


def _program(ctx: GradingContext) -> Path:
    submitted = ctx.submitted_dir / "hw02.py"
    return submitted if ctx.submitted_dir.is_dir() else ctx.notebook_dir / "hw02.py"


def _release_dir(ctx: GradingContext) -> Path:
    """The instructor's copy of the assignment (debugging files, mnist_util.py)."""
    for folder in (ctx.course_root / "solutions" / HW02, ctx.course_root / "source" / HW02):
        if (folder / "bad_digits_ubyte.gz").is_file():
            return folder
    raise GraderProblem(f"homework 2's debugging files are not in {ctx.course_root / 'solutions' / HW02}")


def _instructor_data(load, ctx: GradingContext):
    """``load(course_root=...)`` of the instructor's data; missing or malformed stops autograde."""
    try:
        return load(course_root=ctx.course_root)
    except (FileNotFoundError, ValueError) as exc:
        raise GraderProblem(str(exc)) from None


def _describe(run, evil=None, label="") -> str:
    if run.status != "ok":
        text = f"{label}0 % ({run.status}): {escape_control(run.reason)}"
        if run.status == "crashed" and run.stderr_tail.strip():  # the student's text, control characters shown escaped
            text += "\nEnd of its error output:\n" + escape_control(run.stderr_tail.strip()[-1200:])
        return text
    errors, missed, false_flags = count_errors(run.flagged, evil)
    return (f"{label}{errors} errors ({missed} evil twins missed, {false_flags} digits wrongly "
            f"flagged): {score_errors(errors):.0f} %, {run.seconds:.0f} s")


@register(HW02, "test_debugging")
def grade_debugging_file(ctx: GradingContext) -> CellGrade:
    secret = _instructor_data(load_debugging_set, ctx)
    grade = grade_submission(_program(ctx), [(secret.data, secret.labels, secret.evil, secret.n_digits)],
                             helpers=course_helpers(_release_dir(ctx)))
    text = "Debugging-like file: " + _describe(grade.runs[0], secret.evil) if grade.runs else grade.reason
    ok = grade.status == "ok" and grade.errors <= FREE_ERRORS
    if not ok and grade.status == "ok":
        text += f"\nAt most {FREE_ERRORS} errors earn these points."
    return CellGrade(ctx.max_points if ok else 0.0, text)


@register(HW02, "test_final")
def grade_final_data(ctx: GradingContext) -> CellGrade:
    sets = _instructor_data(load_final_sets, ctx)
    folder = _release_dir(ctx)
    program = _program(ctx)
    grade = grade_submission(program, [(s.data, s.labels, s.evil, s.n_digits) for s in sets],
                             helpers=course_helpers(folder))
    lines = []
    for i, (run, s) in enumerate(zip(grade.runs, sets), 1):
        lines.append(_describe(run, s.evil, f"Final data set {i}: "))
    if not grade.runs:
        lines.append(f"0 %: {grade.reason}")
    lines.append(f"Score: {grade.score:.1f} %")
    try:  # never through a link (autograde refuses those before this)
        source = read_regular_file(program)[:MAX_PROGRAM_BYTES].decode("utf-8", "replace")
        block = check_author_block(source)
        lines.append(f"Author block: {block.status}" + (f" ({block.reason})" if block.reason else ""))
    except (OSError, SubmissionRefused):
        pass
    return CellGrade(ctx.max_points * grade.score / 100.0, "\n".join(lines))
