"""Grade a whole class with the real ``nbgrader autograde``, students in parallel on Dask.

    noisylabels autograde hw01_label_corruption --scheduler local:2
    noisylabels autograde hw01_label_corruption --scheduler tls://HOST:8786 \\
        --tls-ca-file ca.pem --tls-cert client.pem --tls-key client.key

nbgrader grades one submission at a time and its gradebook (sqlite) takes one writer. Here
every student of ``submitted/<student>/<assignment>/`` is one Dask task that runs

    nbgrader autograde ASSIGNMENT --student=S --force

from the course folder, so the course's ``nbgrader_config.py`` applies unchanged (the
submission checks, the sandboxed kernels, grading outside the kernel, the sanitizer), with
a **scratch gradebook** of its own (``NOISYLABELS_GRADEBOOK``, which the course config takes
as ``db_url``): a sqlite file in a private temporary folder on the worker, made from the
assignment's definition and the student's earlier state in the course gradebook
(:func:`export_assignment`, :func:`build_scratch_gradebook`). The task returns what
autograde stored there (:func:`export_submission`: timestamp, notebooks, late penalties,
grades, comments); this process merges it into the course gradebook through nbgrader's API
(:func:`merge_submission`), one transaction per student, as each task finishes, so an
interrupted run keeps every student already merged. The autograded notebooks are written
by nbgrader into the course's ``autograded/`` as usual (formgrader shows them).

The merge replaces what autograde owns (timestamp, late penalty, automatic scores and
comments, whether a grade needs a manual look) and keeps what graders enter in formgrader
(manual scores and comments, extra credit, flags, extensions): what a serial
``nbgrader autograde --force`` leaves in the gradebook.

One student's failure (a refused submission, nbgrader failing, the time limit, a lost
worker) is recorded for that student only: the reason goes to the final table and to the
report ``class_autograde_<assignment>.csv`` in the course folder (a row per student, kept
across runs), their earlier grades stay, and every other student is graded. A refused
student is entered in the gradebook without a submission (``nbgrader export`` lists them
with 0 points), as serial autograde does.

Workers: the cluster and its TLS come from :mod:`autograder.hw02.dask_grading` (``local:N``:
N single-slot worker processes, TLS with temporary credentials; an address: ``tls://`` only,
workers started with ``--nthreads 1 --resources grading=1``). A worker runs nbgrader in the
course folder at the same path: on other hosts the folder must be on shared storage with
the course environment installed. Each kernel gets one PyTorch/BLAS thread (students run in
parallel; two busy kernels with two threads each thrash two cores), unless
``OMP_NUM_THREADS`` is set; a per-class reference (``once_per_assignment``) is computed
once per run in a cache folder shared by the tasks.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["StudentTask", "StudentResult", "export_assignment", "export_submission", "build_scratch_gradebook",
           "merge_submission", "grade_student", "find_students", "autograde_class", "format_table", "REPORT"]

#: The report of a class run, in the course folder: one row per student, kept across runs.
REPORT = "class_autograde_{assignment}.csv"
#: Seconds one student's whole autograde may take (kernel start, every cell, grading): above
#: the course's whole-notebook limit (``SandboxedExecute.notebook_timeout``, 30 minutes).
DEFAULT_TIMEOUT = 40 * 60
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_GLOB = re.compile(r"[*?\[\]{},]")


# ----------------------------------------------------------------------------- gradebook records
def _iso(value):
    return value.isoformat() if value is not None else None


def export_assignment(gb, assignment: str) -> dict:
    """The definition of ``assignment`` in gradebook ``gb`` (what ``generate_assignment`` records)."""
    a = gb.find_assignment(assignment)
    return {"name": a.name, "duedate": _iso(a.duedate), "notebooks": [{
        "name": nb.name, "kernelspec": nb.kernelspec,
        "grade_cells": [{"name": c.name, "max_score": c.max_score, "cell_type": c.cell_type} for c in nb.grade_cells],
        "task_cells": [{"name": c.name, "max_score": c.max_score, "cell_type": c.cell_type} for c in nb.task_cells],
        "solution_cells": [c.name for c in nb.solution_cells],
        "source_cells": [{"name": c.name, "cell_type": c.cell_type, "locked": c.locked, "source": c.source,
                          "checksum": c.checksum} for c in nb.source_cells],
    } for nb in a.notebooks]}


def _student_fields(student) -> dict:
    return {"first_name": student.first_name, "last_name": student.last_name, "email": student.email,
            "lms_user_id": student.lms_user_id}


def export_submission(gb, assignment: str, student: str) -> dict | None:
    """Everything the gradebook ``gb`` holds of one student's submission, as plain data
    (``None`` if there is none): the student, timestamp, extension, and per notebook the
    flag, late penalty, grades and comments."""
    from nbgrader.api import MissingEntry

    try:
        sub = gb.find_submission(assignment, student)
    except MissingEntry:
        return None
    return {
        "assignment": assignment, "student": student, "student_fields": _student_fields(sub.student),
        "timestamp": _iso(sub.timestamp),
        "extension": sub.extension.total_seconds() if sub.extension is not None else None,
        "notebooks": [{
            "name": nb.name, "flagged": nb.flagged, "late_submission_penalty": nb.late_submission_penalty,
            "grades": [{"cell": g.name, "auto_score": g.auto_score, "manual_score": g.manual_score,
                        "extra_credit": g.extra_credit, "needs_manual_grade": g.needs_manual_grade}
                       for g in nb.grades],
            "comments": [{"cell": c.name, "auto_comment": c.auto_comment, "manual_comment": c.manual_comment}
                         for c in nb.comments],
        } for nb in sub.notebooks],
    }


def build_scratch_gradebook(db_url: str, course_id: str, definition: dict, student: str,
                            student_fields: dict | None = None, earlier: dict | None = None) -> None:
    """A gradebook at ``db_url`` holding ``definition`` (:func:`export_assignment`), the student
    and, if ``earlier`` (:func:`export_submission` of the course gradebook), their earlier
    submission: what autograde reads besides the files (the extension and the manual scores
    decide the late penalty's cap and which grades need a manual look)."""
    from nbgrader.api import Gradebook

    name = definition["name"]
    with Gradebook(db_url, course_id) as gb:
        due = definition["duedate"]
        gb.update_or_create_assignment(name, duedate=datetime.datetime.fromisoformat(due) if due else None)
        for nb in definition["notebooks"]:
            gb.update_or_create_notebook(nb["name"], name, kernelspec=nb["kernelspec"])
            for c in nb["grade_cells"]:
                gb.update_or_create_grade_cell(c["name"], nb["name"], name, max_score=c["max_score"],
                                               cell_type=c["cell_type"])
            for c in nb["task_cells"]:
                gb.update_or_create_task_cell(c["name"], nb["name"], name, max_score=c["max_score"],
                                              cell_type=c["cell_type"])
            for cell in nb["solution_cells"]:
                gb.update_or_create_solution_cell(cell, nb["name"], name)
            for c in nb["source_cells"]:
                gb.update_or_create_source_cell(c["name"], nb["name"], name, cell_type=c["cell_type"],
                                                locked=c["locked"], source=c["source"], checksum=c["checksum"])
        gb.update_or_create_student(student, **(student_fields or {}))
        if earlier is not None:
            _write_submission(gb, earlier, keep_manual=False)


def _write_submission(gb, record: dict, *, keep_manual: bool) -> None:
    """Write ``record`` into ``gb`` in one transaction (see :func:`merge_submission`)."""
    try:
        with gb.db.no_autoflush:
            _fill_submission(gb, record, keep_manual=keep_manual)
        gb.db.commit()
    except Exception:
        gb.db.rollback()
        raise


def _fill_submission(gb, record: dict, *, keep_manual: bool) -> None:
    from nbgrader.api import Comment, Grade, MissingEntry, SubmittedAssignment, SubmittedNotebook

    assignment = gb.find_assignment(record["assignment"])
    student = gb.update_or_create_student(record["student"], **record.get("student_fields", {}))
    try:
        sub = gb.find_submission(record["assignment"], record["student"])
    except MissingEntry:
        sub = SubmittedAssignment(assignment=assignment, student=student)
        gb.db.add(sub)
    sub.timestamp = datetime.datetime.fromisoformat(record["timestamp"]) if record["timestamp"] else None
    if not keep_manual:
        ext = record.get("extension")
        sub.extension = datetime.timedelta(seconds=ext) if ext is not None else None
    by_name = {nb.name: nb for nb in assignment.notebooks}
    mine = {nb.notebook.name: nb for nb in sub.notebooks}
    for nb_record in record["notebooks"]:
        notebook = by_name.get(nb_record["name"])
        if notebook is None:
            raise ValueError(f"notebook {nb_record['name']!r} is not in the course gradebook's "
                             f"{record['assignment']}: was it registered again meanwhile?")
        snb = mine.get(notebook.name)
        if snb is None:
            snb = SubmittedNotebook(notebook=notebook, assignment=sub)
            gb.db.add(snb)
        snb.late_submission_penalty = nb_record["late_submission_penalty"]
        if not keep_manual:
            snb.flagged = nb_record["flagged"]
        # a cell can be a grade cell and a solution cell: two rows of the same name
        graded = {c.name: c for c in notebook.grade_cells + notebook.task_cells}
        commented = {c.name: c for c in notebook.solution_cells + notebook.task_cells}
        grades = {g.cell.name: g for g in snb.grades if g.cell is not None}
        comments = {c.cell.name: c for c in snb.comments if c.cell is not None}
        for g in nb_record["grades"]:
            grade = grades.get(g["cell"])
            if grade is None:
                grade = Grade(cell_id=_cell(graded, g["cell"]).id, notebook=snb)
                gb.db.add(grade)
            grade.auto_score = g["auto_score"]
            if keep_manual:  # what serial autograde decides from the manual score in the gradebook now
                grade.needs_manual_grade = g["needs_manual_grade"] or grade.manual_score is not None
            else:
                grade.manual_score, grade.extra_credit = g["manual_score"], g["extra_credit"]
                grade.needs_manual_grade = g["needs_manual_grade"]
        for c in nb_record["comments"]:
            comment = comments.get(c["cell"])
            if comment is None:
                comment = Comment(cell_id=_cell(commented, c["cell"]).id, notebook=snb)
                gb.db.add(comment)
            comment.auto_comment = c["auto_comment"]
            if not keep_manual:
                comment.manual_comment = c["manual_comment"]


def _cell(cells: dict, name: str):
    if name not in cells:
        raise ValueError(f"cell {name!r} is not in the course gradebook: was the assignment registered again meanwhile?")
    return cells[name]


def merge_submission(gb, record: dict) -> None:
    """Put one student's autograde result (:func:`export_submission` of a scratch gradebook)
    into the course gradebook ``gb``, in one transaction: the timestamp, late penalties,
    automatic scores and comments replace the earlier ones; manual scores and comments,
    extra credit, flags and the extension stay as graders left them (as after a serial
    ``nbgrader autograde --force``), and a grade with a manual score still needs a look."""
    _write_submission(gb, record, keep_manual=True)


# ----------------------------------------------------------------------------- one student (on a worker)
@dataclasses.dataclass(frozen=True)
class StudentTask:
    """What a worker needs to grade one student (plain data; the course folder is a path)."""

    root: str
    course_id: str
    assignment: str
    student: str
    definition: dict
    student_fields: dict | None
    earlier: dict | None
    timeout: float
    env: tuple  #: ``((name, value), ...)`` set for nbgrader (threads, the reference cache)


def grade_student(task: StudentTask) -> dict:
    """Run the real ``nbgrader autograde`` for one student with a scratch gradebook.

    Returns ``{"status": "graded" | "failed", "reason", "seconds", "record", "log"}``:
    ``record`` is :func:`export_submission` of the scratch gradebook (``None`` if autograde
    stored no submission), ``log`` the end of nbgrader's output."""
    from nbgrader.api import Gradebook

    from noisylabels.course import new_gradebook

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="class-autograde-") as tmp:
        os.chmod(tmp, 0o700)
        db_url = new_gradebook(Path(tmp, "gradebook.db"))
        build_scratch_gradebook(db_url, task.course_id, task.definition, task.student, task.student_fields,
                                task.earlier)
        env = dict(os.environ, **dict(task.env), NOISYLABELS_GRADEBOOK=db_url)
        cmd = [sys.executable, "-m", "nbgrader", "autograde", task.assignment, f"--student={task.student}", "--force"]
        returncode, log = _run(cmd, cwd=task.root, env=env, timeout=task.timeout)
        with Gradebook(db_url, task.course_id) as gb:
            record = export_submission(gb, task.assignment, task.student)
    seconds = round(time.monotonic() - start, 1)
    tail = log[-4000:]
    if returncode is None:
        return {"status": "failed", "reason": f"stopped at the time limit ({task.timeout:g} s for the whole autograde)",
                "seconds": seconds, "record": None, "log": tail}
    if returncode != 0 or record is None or not any(g["auto_score"] is not None for nb in record["notebooks"]
                                                    for g in nb["grades"]):
        return {"status": "failed", "reason": failure_reason(log, returncode), "seconds": seconds,
                "record": None, "log": tail}
    return {"status": "graded", "reason": "", "seconds": seconds, "record": record, "log": tail}


def _has_student(gb, student: str) -> bool:
    from nbgrader.api import MissingEntry

    try:
        gb.find_student(student)
    except MissingEntry:
        return False
    return True


def _run(cmd, *, cwd, env, timeout) -> tuple:
    """``(returncode, output)``; ``returncode`` ``None`` when stopped at ``timeout`` (SIGINT
    first, so that nbgrader shuts its kernel down; then SIGKILL for the whole process group).
    nbgrader dies with the worker (``setpriv --pdeathsig``; its sandboxed kernel dies with it):
    a cancelled or closed cluster leaves no grading behind."""
    if shutil.which("setpriv"):
        cmd = ["setpriv", "--pdeathsig", "KILL", "--", *cmd]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
            _stop(proc)
        except BaseException:  # the worker or the grader is interrupted: no nbgrader left behind
            _stop(proc)
            raise
        out.seek(0)
        return returncode, out.read().decode("utf-8", "replace")


def _stop(proc, grace: float = 30) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


_GENERIC = ("Please see the", "There was an error processing assignment")


def failure_reason(log: str, returncode) -> str:
    """The most telling error line of nbgrader's output (the refusal's reasons, the exception)."""
    from autograder.submission import escape_control

    lines = [line.strip() for line in log.splitlines()]
    refused = [line for line in lines if "refused, nothing of it copied or graded" in line]
    if refused:
        return escape_control(refused[-1].split("| ERROR]", 1)[-1].strip(), keep_newlines=False)[:500]
    errors = [line.split("| ERROR]", 1)[-1].strip() for line in lines
              if "| ERROR]" in line and not any(g in line for g in _GENERIC)]
    exceptions = [line for line in lines if re.match(r"^[A-Za-z_.]+(Error|Exception|Refused|Unavailable)\b.*:", line)]
    text = (exceptions or errors or [f"nbgrader autograde exited with status {returncode} and stored no grades"])[-1]
    return escape_control(text, keep_newlines=False)[:500]


# ----------------------------------------------------------------------------- the class (this process)
@dataclasses.dataclass
class StudentResult:
    student: str
    status: str              #: graded, failed or skipped
    score: float | None = None
    max_score: float | None = None
    seconds: float | None = None
    reason: str = ""


def _course_config(root: Path):
    """The course's nbgrader configuration (``nbgrader_config.py`` run as nbgrader runs it)."""
    from traitlets.config.loader import PyFileConfigLoader

    if not (root / "nbgrader_config.py").is_file():
        raise FileNotFoundError(f"{root} has no nbgrader_config.py: run from the course folder (or give --root)")
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def find_students(root: Path, assignment: str, only=None) -> dict:
    """``{student: problem or None}``: the folders ``submitted/<student>/<assignment>`` (or the
    students asked for). Nothing is read or followed; nbgrader's submission check refuses links."""
    submitted = root / "submitted"
    names = list(only) if only else sorted(
        entry.name for entry in (os.scandir(submitted) if submitted.is_dir() else [])
        if not entry.name.startswith(".") and os.path.lexists(os.path.join(entry.path, assignment)))
    students = {}
    for name in names:
        if not name or "/" in name or name in (".", "..") or _GLOB.search(name):
            students[name] = "not a student id nbgrader can take (no /, *, ?, [, ], {, }, or commas)"
        elif not os.path.lexists(submitted / name / assignment):
            students[name] = f"no submission (submitted/{name}/{assignment} does not exist)"
        else:
            students[name] = None
    return students


def _score(record: dict) -> float:
    """The automatic points of a submission record."""
    return sum(g["auto_score"] or 0 for nb in record["notebooks"] for g in nb["grades"])


def _thread_env() -> dict:
    if any(name in os.environ for name in THREAD_VARIABLES):
        return {}
    return {name: "1" for name in THREAD_VARIABLES}


def autograde_class(root, assignment: str, *, scheduler: str = "local:2", students=None, force: bool = False,
                    tls: dict | None = None, timeout: float = DEFAULT_TIMEOUT, log=print) -> list:
    """Grade ``assignment`` for every student (or ``students``) on Dask; merge each result into
    the course gradebook as it comes. Returns the :class:`StudentResult` of every student."""
    from distributed import as_completed
    from nbgrader.api import Gradebook, MissingEntry

    from autograder.hw02 import dask_grading
    from autograder.nbgrader_plugins.kernel_sandbox import UNSAFE_ENV
    from autograder.nbgrader_plugins.outside_kernel import REFERENCE_CACHE_ENV

    root = Path(root).resolve()
    config = _course_config(root)
    course = config.CourseDirectory
    db_url, course_id = course.db_url, course.course_id or "default_course"
    report = root / REPORT.format(assignment=assignment)
    with Gradebook(db_url, course_id) as gb:
        try:
            definition = export_assignment(gb, assignment)
        except MissingEntry:
            raise ValueError(f"{assignment} is not in the course gradebook: register it first "
                             f"(noisylabels assignments {assignment} --register)") from None
        max_score = sum(c["max_score"] for nb in definition["notebooks"] for c in nb["grade_cells"] + nb["task_cells"])
        results, todo = {}, []
        for student, problem in find_students(root, assignment, students).items():
            earlier = export_submission(gb, assignment, student) if problem is None else None
            if problem:
                results[student] = StudentResult(student, "failed", reason=problem)
            elif not force and earlier is not None and (root / "autograded" / student / assignment).is_dir() \
                    and any(g["auto_score"] is not None for nb in earlier["notebooks"] for g in nb["grades"]):
                results[student] = StudentResult(student, "skipped", _score(earlier), max_score,
                                                 reason="graded before (--force grades again)")
            else:
                fields = _student_fields(gb.find_student(student)) if _has_student(gb, student) else None
                todo.append((student, fields, earlier))
    _write_report(report, results.values())
    if not todo:
        log(f"{assignment}: nothing to grade")
        return list(results.values())

    unsafe = os.environ.get(UNSAFE_ENV) == "1"
    cache = root / ".grading_cache" / uuid.uuid4().hex[:12]  # one run's shared references (the grader's only)
    cache.mkdir(parents=True, mode=0o700)
    env = {**_thread_env(), REFERENCE_CACHE_ENV: str(cache)}
    (root / "autograded").mkdir(exist_ok=True)
    client, cluster = dask_grading.connect(scheduler, tls=tls, log=log)
    try:
        slots = dask_grading.check_workers(client, unsafe=unsafe)
        log(f"{assignment}: grading {len(todo)} student(s) on {slots} worker slot(s)")
        pending = list(reversed(todo))
        owner, outstanding = {}, {}
        run_id = uuid.uuid4().hex[:8]

        def submit():
            student, fields, earlier = pending.pop()
            task = StudentTask(str(root), course_id, assignment, student, definition, fields, earlier,
                               timeout, tuple(sorted(env.items())))
            future = client.submit(grade_student, task, key=f"autograde-{assignment}-{run_id}-{student}",
                                   resources={dask_grading.RESOURCE: 1}, retries=1, pure=False)
            owner[future.key], outstanding[future.key] = student, future
            return future

        queue = as_completed([submit() for _ in range(min(dask_grading.MAX_IN_FLIGHT, len(pending)))])
        try:
            for future in queue:
                student = owner.pop(future.key)
                outstanding.pop(future.key, None)
                results[student] = _record(future, student, db_url, course_id, max_score)
                future.release()
                _write_report(report, [results[student]])
                r = results[student]
                log(f"{student}: {r.status}" + (f" {r.score:g}/{r.max_score:g}" if r.score is not None else "")
                    + (f" in {r.seconds:g} s" if r.seconds is not None else "") + (f" ({r.reason})" if r.reason else ""))
                if pending:
                    queue.add(submit())
        finally:  # interrupted: nothing keeps grading for a grader that is gone
            if outstanding:
                client.cancel(list(outstanding.values()))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(cache, ignore_errors=True)
    return [results[s] for s in sorted(results)]


def _record(future, student, db_url, course_id, max_score) -> StudentResult:
    """Merge one finished task into the course gradebook; its :class:`StudentResult`."""
    from nbgrader.api import Gradebook

    try:
        outcome = future.result()
    except Exception as exc:  # KilledWorker, an error of the grader on the worker
        return StudentResult(student, "failed", reason=f"{type(exc).__name__}: {exc}"[:500])
    with Gradebook(db_url, course_id) as gb:
        if outcome["status"] != "graded":
            gb.update_or_create_student(student)  # listed by nbgrader export, as after serial autograde
            return StudentResult(student, "failed", seconds=outcome["seconds"], reason=outcome["reason"])
        try:
            merge_submission(gb, outcome["record"])
        except Exception as exc:
            return StudentResult(student, "failed", seconds=outcome["seconds"],
                                 reason=f"not merged into the gradebook: {type(exc).__name__}: {exc}"[:500])
    return StudentResult(student, "graded", _score(outcome["record"]), max_score, outcome["seconds"])


# ----------------------------------------------------------------------------- report
FIELDS = ("student", "status", "score", "max_score", "seconds", "reason", "when")


def _write_report(path: Path, results) -> None:
    """Update the rows of ``results`` in the report (other students' rows stay), atomically."""
    from autograder.hw02.csv_safe import FORMULA_STARTS, csv_safe_row

    def unquoted(text):  # what csv_safe wrote back to the id
        return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text

    rows = {}
    if path.is_file() and not path.is_symlink():
        with open(path, newline="") as fh:
            rows = {unquoted(row["student"]): row for row in csv.DictReader(fh)}
    when = datetime.datetime.now().isoformat(timespec="seconds")
    for r in results:
        rows[r.student] = {**dataclasses.asdict(r), "when": when}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    for student in sorted(rows):
        writer.writerow(csv_safe_row({**rows[student], "student": student}))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", newline="") as fh:
        fh.write(buffer.getvalue())
    os.replace(tmp, path)


def format_table(results) -> str:
    """The final table: one line a student, failures with their reason."""
    from autograder.submission import escape_control

    lines = [f"{'student':<20} {'status':<8} {'score':>11} {'seconds':>8}  reason"]
    for r in results:
        score = f"{r.score:g}/{r.max_score:g}" if r.score is not None else ""
        seconds = f"{r.seconds:g}" if r.seconds is not None else ""
        lines.append(f"{escape_control(r.student, keep_newlines=False):<20} {r.status:<8} {score:>11} {seconds:>8}  "
                     f"{escape_control(r.reason, keep_newlines=False)}")
    counts = {s: sum(r.status == s for r in results) for s in ("graded", "failed", "skipped")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line
def add_arguments(parser) -> None:
    """The options of ``noisylabels autograde``."""
    parser.add_argument("assignment", help="the assignment (registered with noisylabels assignments --register)")
    parser.add_argument("--scheduler", default="local:2", metavar="local:N|ADDRESS",
                        help="local:N: N grading workers on this machine (default local:2; one a core is a good "
                             "start); or a Dask scheduler, only over TLS (tls://host:8786 with --tls-ca-file, "
                             "--tls-cert, --tls-key), whose workers see the course folder at the same path")
    for flag, what in (("--tls-ca-file", "the cluster's CA certificate"),
                       ("--tls-cert", "the client's certificate (may hold its key too)"),
                       ("--tls-key", "the client's private key")):
        parser.add_argument(flag, default=None, metavar="PEM", help=f"{what}, for a tls:// scheduler")
    parser.add_argument("--student", action="append", default=None, metavar="ID",
                        help="grade only this student (repeatable; default: every submitted/<student>/<assignment>)")
    parser.add_argument("--force", action="store_true",
                        help="grade again students already graded (their automatic scores are replaced)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds one student's whole autograde may take (default {DEFAULT_TIMEOUT})")


def run(args) -> int:
    """``noisylabels autograde``: 0 if every student was graded (or skipped), 1 if some failed,
    2 if nothing could be graded (the reason is printed), 130 when interrupted."""
    from autograder import sandbox

    root = Path(args.root).resolve() if getattr(args, "root", None) else None
    if root is None:
        from noisylabels.course import find_root

        root = find_root()
    start = time.monotonic()
    try:
        results = autograde_class(root, args.assignment, scheduler=args.scheduler, students=args.student,
                                  force=args.force, timeout=args.timeout,
                                  tls={"tls_ca_file": args.tls_ca_file, "tls_client_cert": args.tls_cert,
                                       "tls_client_key": args.tls_key})
    except KeyboardInterrupt:
        print(f"interrupted: the students graded so far are in the gradebook and in "
              f"{REPORT.format(assignment=args.assignment)}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, ConnectionError, RuntimeError, sandbox.SandboxUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(format_table(results))
    print(f"{len(results)} student(s) in {time.monotonic() - start:.0f} s; rows in "
          f"{REPORT.format(assignment=args.assignment)}")
    return 1 if any(r.status == "failed" for r in results) else 0
