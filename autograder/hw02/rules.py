"""Homework 2 ("evil twins"): the rules a submission is graded by, and one graded run.

The homework's rules: ``hw02.py`` runs as ``timeout -k 1s 3m python3 hw02.py --data D
--labels L`` and prints the evil twins' indices, comma separated; errors = missed evil
twins + flagged non-twins; the first 3 errors are free, then 5 % off each. Every run goes
through the isolated sandbox (:mod:`autograder.sandbox`) with a runtime that has NumPy
and PyTorch only (not the course library, its generator, or any package that ships
labelled digits), and ``hw02.py`` may be at most :data:`MAX_PROGRAM_BYTES`.

Used by both grading paths: ``python -m autograder.hw02.grade`` and homework 2's nbgrader
graders (:mod:`autograder.nbgrader_plugins.hw02_grading`).
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

from autograder import sandbox, submission

__all__ = [
    "HW02",
    "FREE_ERRORS",
    "PENALTY_PER_ERROR",
    "DEFAULT_TIME_LIMIT",
    "TIME_LIMIT_ENV",
    "MAX_PROGRAM_BYTES",
    "RUNTIME",
    "STATUSES",
    "count_errors",
    "score_errors",
    "parse_indices",
    "parse_time_limit",
    "describe_time_limit",
    "current_time_limit",
    "timeout_command",
    "read_key",
    "RunResult",
    "run_submission",
    "Grade",
    "run_sets",
    "score_runs",
    "grade_submission",
    "course_helpers",
    "check_on_debugging_files",
]

#: The assignment's folder name in ``solutions/`` and ``assignments/``.
HW02 = "hw02_evil_twins"
FREE_ERRORS = 3
PENALTY_PER_ERROR = 5.0  # percent
#: The homework's rule: ``timeout -k 1s 3m python3 hw02.py ...``.
DEFAULT_TIME_LIMIT = "3m"
#: Environment variable that shortens (or lengthens) the limit, for tests only.
TIME_LIMIT_ENV = "NOISYLABELS_HW02_TIME_LIMIT"
#: Largest ``hw02.py`` graded: an honest program is a few KB (the reference solution 12 KB);
#: a pool of labelled digits embedded in the source is not.
MAX_PROGRAM_BYTES = 64 * 1024
#: What a submission may import: NumPy, PyTorch (and what they need), ``mnist_util.py``.
RUNTIME = sandbox.Runtime(packages=("numpy", "torch"))

#: ``ok``; ``timeout``; ``crashed`` (non-zero exit, killed, too many processes, no or
#: too large ``hw02.py``); ``bad_output`` (not a list of indices, or too much output);
#: ``refused`` (the submission is not regular files only: a link, FIFO, device, folder or
#: hard link where ``hw02.py`` should be, see :mod:`autograder.submission`; never run).
STATUSES = ("ok", "timeout", "crashed", "bad_output", "refused")


# ----------------------------------------------------------------------------- scoring
def count_errors(flagged, evil):
    """``(errors, missed, false_flags)``: missed evil twins plus flagged non-twins."""
    flagged, evil = {int(i) for i in flagged}, {int(i) for i in evil}
    missed = len(evil - flagged)
    false_flags = len(flagged - evil)
    return missed + false_flags, missed, false_flags


def score_errors(errors: int) -> float:
    """The score in percent: the first 3 errors free, then 5 % off each, never below 0."""
    return max(0.0, 100.0 - PENALTY_PER_ERROR * max(0, int(errors) - FREE_ERRORS))


#: Longest index accepted: far above any file's size, far below ``int``'s 4,300-digit limit.
_MAX_INDEX_DIGITS = 18


def _index_tokens(line: str):
    """The index tokens of one stripped output line, or ``None`` if it is not a list of integers.

    One pass over the line, no backtracking: an optional ``[``, integers separated by commas
    (spaces around them allowed), an optional trailing comma, an optional ``]``.
    """
    body = line
    if body.startswith("["):
        body = body[1:].strip()
    if body.endswith("]"):
        body = body[:-1].strip()
    if body.endswith(","):
        body = body[:-1].strip()
    if not body:
        return []
    tokens = [t.strip() for t in body.split(",")]
    if not all(t.isdecimal() for t in tokens):  # "" (two commas), "x", "-1", "2 3", "[[" ...
        return None
    return tokens


def parse_indices(stdout: str, n: int | None = None):
    """The indices a submission printed, or raise ``ValueError`` with the reason.

    The answer is the last non-empty line of standard output: integers separated by
    commas (``2, 3, 12``; brackets allowed, as Python prints a list). An empty output
    or an empty last line ``""`` / ``[]`` means "no evil twins". Indices must lie in
    ``0 .. n-1`` when ``n`` is given; repeats count once. Linear in the output's length
    (the output read back is at most 1 MB).
    """
    last = ""
    for line in reversed(stdout.splitlines()):
        if line.strip():
            last = line.strip()
            break
    if not last:
        return []
    tokens = _index_tokens(last)
    if tokens is None:
        shown = last if len(last) <= 80 else last[:77] + "..."
        raise ValueError(f"the last line of output is not a comma-separated list of integers: {shown!r}")
    long = next((t for t in tokens if len(t) > _MAX_INDEX_DIGITS), None)
    if long is not None:
        raise ValueError(f"an index of {len(long)} digits is out of range"
                         + (f" (the file has {n} digits, 0 to {n - 1})" if n is not None else ""))
    values = sorted({int(t) for t in tokens})
    if n is not None:
        bad = [v for v in values if v >= n]
        if bad:
            raise ValueError(f"index {bad[0]} is out of range (the file has {n} digits, 0 to {n - 1})")
    return values


def read_key(path, n: int | None = None) -> list:
    """The evil-twin indices of a key file; ``ValueError`` if it is not a list of indices."""
    text = Path(path).read_text()
    tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    if not all(t.isdigit() for t in tokens):
        raise ValueError(f"{path}: a key file holds comma-separated indices, found {text.strip()[:60]!r}")
    values = sorted({int(t) for t in tokens})
    if n is not None and values and values[-1] >= n:
        raise ValueError(f"{path}: index {values[-1]} is out of range for a file of {n} digits")
    return values


# ----------------------------------------------------------------------------- the command
def parse_time_limit(text) -> float:
    """Seconds in a ``timeout`` duration: ``"3m"`` -> 180, ``"20s"`` -> 20, ``"1.5"`` -> 1.5."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*", str(text))
    if not m:
        raise ValueError(f"not a timeout duration: {text!r} (use e.g. 3m, 90s)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def describe_time_limit(text) -> str:
    """``"3m"`` -> ``"3 minutes"``, ``"20s"`` -> ``"20 seconds"``."""
    seconds = parse_time_limit(text)
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def current_time_limit(time_limit=None) -> str:
    """``time_limit`` if given, else ``$NOISYLABELS_HW02_TIME_LIMIT``, else ``"3m"``."""
    limit = time_limit or os.environ.get(TIME_LIMIT_ENV) or DEFAULT_TIME_LIMIT
    parse_time_limit(limit)
    return str(limit)


def timeout_command(data: str, labels: str, time_limit=None, program: str = "hw02.py") -> list:
    """The command every submission runs as: ``timeout -k 1s 3m python3 hw02.py --data D --labels L``."""
    return ["timeout", "-k", "1s", current_time_limit(time_limit), "python3", program,
            "--data", data, "--labels", labels]


# ----------------------------------------------------------------------------- one run
@dataclass
class RunResult:
    """What one run of a submission did: ``status`` is one of :data:`STATUSES`."""

    status: str
    flagged: list | None = None
    seconds: float = 0.0
    reason: str = ""
    returncode: int | None = None
    stderr_tail: str = ""
    isolated: bool = True


def course_helpers(assignment_dir=None) -> list:
    """The helper files a submission may import (the assignment's ``mnist_util.py``)."""
    if assignment_dir is None:
        assignment_dir = Path(__file__).resolve().parents[2] / "solutions" / HW02
    helper = Path(assignment_dir) / "mnist_util.py"
    return [helper] if helper.exists() else []


def run_submission(program, data, labels, *, time_limit=None, helpers=(), limits=None,
                   n_digits: int | None = None, unsafe: bool = False) -> RunResult:
    """Run a student's ``hw02.py`` on one data set in the sandbox and judge what it printed.

    The working folder holds ``hw02.py``, the ``helpers`` and the two data files (read
    only); the command is :func:`timeout_command`. Never raises for anything the program
    does; raises for the grader's own problems (a missing data file, no sandbox).
    """
    program = Path(program)
    limits = limits or sandbox.Limits()
    limit_text = current_time_limit(time_limit)
    seconds_limit = parse_time_limit(limit_text)
    data, labels = Path(data), Path(labels)
    for path in (data, labels, *map(Path, helpers)):
        if not path.is_file():
            raise FileNotFoundError(f"grading file missing: {path}")
    try:  # judged without following it: a link, FIFO or device is never opened
        problem = submission.check_file(program)
        size = os.lstat(program).st_size
    except OSError:
        return RunResult("crashed", reason="no hw02.py in the submission")
    if problem:
        return RunResult("refused", reason=problem)
    if size > MAX_PROGRAM_BYTES:
        return RunResult("crashed", reason=(f"hw02.py is {size // 1024} KB; the limit is "
                                            f"{MAX_PROGRAM_BYTES // 1024} KB"))
    files = {"hw02.py": program, data.name: data, labels.name: labels}
    files.update({Path(h).name: Path(h) for h in helpers})
    env = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}
    result = sandbox.run_sandboxed(timeout_command(data.name, labels.name, limit_text), files,
                                   wall_seconds=seconds_limit + 5, limits=limits,
                                   runtime=RUNTIME, env=env, unsafe=unsafe)
    rc = result.returncode
    run = RunResult("ok", seconds=round(result.seconds, 2), returncode=rc,
                    stderr_tail=result.stderr_tail, isolated=result.isolated)
    if result.changed_files:  # read-only mounts make this impossible; say so if it ever happens
        run.status, run.reason = "crashed", f"changed the grading files {result.changed_files}"
    elif result.wall_killed or (rc in (124, 137, -signal.SIGKILL) and result.seconds >= seconds_limit - 0.5):
        run.status, run.reason = "timeout", f"timed out after {describe_time_limit(limit_text)}"
    elif result.stdout_size >= limits.file_size or len(result.stdout) > limits.output:
        run.status, run.reason = "bad_output", f"printed more than {limits.output // sandbox.MB} MB of output"
    elif rc != 0:
        what = f"exit status {rc}"
        signum = -rc if rc < 0 else rc - 128 if rc > 128 else 0
        if signum:
            try:
                what = f"killed by {signal.Signals(signum).name}"
            except ValueError:
                pass
        if "MemoryError" in result.stderr_tail:
            what += ", out of memory"
        if "BlockingIOError" in result.stderr_tail or "Resource temporarily unavailable" in result.stderr_tail:
            what += f", more than {limits.processes} processes"
        run.status, run.reason = "crashed", f"crashed ({what})"
    else:
        try:
            run.flagged = parse_indices(result.stdout.decode("utf-8", "replace"), n_digits)
        except ValueError as exc:
            run.status, run.reason = "bad_output", str(exc)
    return run


# ----------------------------------------------------------------------------- a grade
@dataclass
class Grade:
    """A submission's grade over one or more data sets (score = mean of their scores)."""

    status: str
    score: float
    errors: int | None = None
    missed: int | None = None
    false_flags: int | None = None
    seconds: float = 0.0
    reason: str = ""
    stderr_tail: str = ""
    isolated: bool = True
    runs: list = field(default_factory=list)


def run_sets(program, sets, *, time_limit=None, helpers=(), limits=None, unsafe: bool = False) -> list:
    """Run ``program`` on each of ``sets`` (``(data_path, labels_path, n_digits)``): its runs, in order.

    No key is needed (or given): this is the part of grading that may happen on another
    machine (:mod:`autograder.hw02.dask_grading`). A missing or oversized ``hw02.py`` is the
    same on every set, so the runs stop after the first one then.
    """
    runs = []
    for data, labels, n in sets:
        run = run_submission(program, data, labels, time_limit=time_limit, helpers=helpers,
                             limits=limits, n_digits=n, unsafe=unsafe)
        runs.append(run)
        if run.status == "refused" or run.status != "ok" and run.reason.startswith(("no hw02.py", "hw02.py is")):
            break
    return runs


def score_runs(runs, keys, *, isolated: bool = True) -> Grade:
    """The grade of ``runs`` (from :func:`run_sets`) against ``keys``, one evil-index list per set.

    A run that does not end ``ok`` scores 0 on that set, and so does a set without a run.
    The score is the mean over the sets; errors, missed and false flags are summed over
    the sets that ran; the status is ``ok`` or the first other status met.
    """
    runs, keys = list(runs), list(keys)
    if len(runs) > len(keys):
        raise ValueError(f"{len(runs)} runs for {len(keys)} data sets")
    scores = []
    errors = missed = false_flags = 0
    any_ok = False
    status, reason, tail, seconds = "ok", "", "", 0.0
    for run, evil in zip(runs, keys):
        seconds += run.seconds
        if run.status != "ok":
            scores.append(0.0)
            if status == "ok":
                status, reason, tail = run.status, run.reason, run.stderr_tail
            continue
        any_ok = True
        set_errors, set_missed, set_false = count_errors(run.flagged, evil)
        errors, missed, false_flags = errors + set_errors, missed + set_missed, false_flags + set_false
        scores.append(score_errors(set_errors))
    scores += [0.0] * (len(keys) - len(scores))
    score = sum(scores) / len(scores) if scores else 0.0
    if not any_ok:
        errors = missed = false_flags = None
    return Grade(status=status, score=round(score, 2), errors=errors, missed=missed,
                 false_flags=false_flags, seconds=round(seconds, 1), reason=reason,
                 stderr_tail=tail, isolated=isolated, runs=runs)


def grade_submission(program, datasets, *, time_limit=None, helpers=(), limits=None,
                     unsafe: bool = False) -> Grade:
    """Grade ``program`` on ``datasets``: a list of ``(data_path, labels_path, evil_indices, n_digits)``.

    :func:`run_sets` then :func:`score_runs` (see there for the rules).
    """
    datasets = list(datasets)
    runs = run_sets(program, [(data, labels, n) for data, labels, _, n in datasets],
                    time_limit=time_limit, helpers=helpers, limits=limits, unsafe=unsafe)
    return score_runs(runs, [evil for _, _, evil, _ in datasets], isolated=not unsafe)


# ----------------------------------------------------------------------------- the notebook's self-check
#: The student's own check runs in their own kernel (or, under autograde, in the kernel's
#: sandbox), not in a fresh sandbox: no process limit of its own (``RLIMIT_NPROC`` would count
#: every process of the student's user), the rest as in grading.
SELF_CHECK_LIMITS = sandbox.Limits(processes=None)


def check_on_debugging_files(program="hw02.py", folder=".", time_limit=None, show=print) -> Grade:
    """The homework notebook's "check your work": run ``hw02.py`` on the debugging files.

    Runs the rule's command (``timeout -k 1s 3m python3 hw02.py ...``) in a scratch folder
    with plain limits and shows the errors and the score it would get. It only *shows*:
    the points are computed by the course's grader, outside the notebook.
    """
    from noisylabels.evil_twins import DEBUG_SETTINGS, make_evil_twin_set

    folder = Path(folder)
    data, labels = folder / "bad_digits_ubyte.gz", folder / "bad_labels_ubyte.gz"
    evil = make_evil_twin_set(**DEBUG_SETTINGS).evil
    grade = grade_submission(folder / program, [(data, labels, evil, DEBUG_SETTINGS["size"])],
                             time_limit=time_limit, helpers=course_helpers(folder),
                             limits=SELF_CHECK_LIMITS, unsafe=True)
    if grade.status != "ok":
        show(f"{grade.status}: {grade.reason}")
        if grade.stderr_tail.strip():
            show("End of its error output:\n" + grade.stderr_tail.strip()[-1500:])
    else:
        run = grade.runs[0]
        show(f"hw02.py printed {len(run.flagged)} indices in {run.seconds:.0f} s: "
             f"{grade.errors} errors ({grade.missed} evil twins missed, {grade.false_flags} "
             f"digits wrongly flagged)")
    show(f"Score on the debugging files: {grade.score:.0f} %")
    return grade
