"""Grade homework 2 ("evil twins") submissions outside nbgrader.

    python -m autograder.hw02.grade SUBMISSIONS_DIR --final instructor/hw02_evil_twins
        [--out hw02_grades.csv] [--time-limit 3m] [--jobs 1 | --scheduler ADDRESS|local:N]
        [--unsafe-sandbox]
    python -m autograder.hw02.grade SUBMISSIONS_DIR --data D --labels L --key K [...]

``SUBMISSIONS_DIR/<student>/hw02.py`` is run for every student exactly as the homework's
rules say (``timeout -k 1s 3m python3 hw02.py --data ... --labels ...``) in the isolated
sandbox (:mod:`autograder.sandbox`, :mod:`autograder.hw02.rules`), once per final data
set; the score is the mean of the sets' scores. The keys never leave this process.

Each student's folder is checked first, without following anything
(:func:`autograder.submission.check_submission`): a folder holding a symbolic link, FIFO,
socket, device, hard link, a folder named ``hw02.py`` or a file over the size cap is
never read or run; the student gets a ``refused`` row (score 0) with the reason, and
everyone else is graded.

The grades file gets one row per student as soon as the student is graded, written
atomically. A rerun after an interruption checks the file (header, complete and valid
rows, no duplicates, the same submission, grading data, time limit, limits, sandbox mode
and :data:`GRADER_VERSION` as recorded) and grades again every student whose row is
missing or not trustworthy. Reasons for zeros go to the row's ``reason`` and to
``<out>.log`` (control characters escaped); each row records the author-block check
(``ok``, ``missing``, ``incomplete``; it never changes the score). After grading, the
class's similarity report is written next to the grades (``<out stem>_similarity.csv`` and
``.html``, see :mod:`autograder.hw02.similarity`). Every file the grader writes is mode
0600, and CSV cells a spreadsheet would run as a formula are escaped
(:mod:`autograder.hw02.csv_safe`). Problems of the grader's own (a missing or malformed
data or key file, no sandbox) stop it before any student is graded, with the reason.

With ``--scheduler`` the programs run on Dask workers (:mod:`autograder.hw02.dask_grading`):
each task gets the bytes of the program, data and helpers, never a key; the rows are
scored and written here as tasks finish. A student whose task is lost for good (its
worker died again after Dask's retry) gets no row, so a rerun grades it; the run then
ends with an error naming them (exit status 3).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autograder import sandbox, submission
from autograder.hw02.author_block import check_author_block
from autograder.hw02.csv_safe import csv_safe, csv_safe_row
from autograder.hw02.data import load_final_sets, validate_set
from autograder.hw02.rules import (MAX_PROGRAM_BYTES, STATUSES, TIME_LIMIT_ENV, Grade, course_helpers,
                                   current_time_limit, grade_submission, parse_time_limit, score_runs)

COLUMNS = ["student", "errors", "missed", "false_flags", "score", "status", "reason", "seconds",
           "author_block", "sandbox", "submission_sha256", "grading_data"]
DEFAULT_OUT = "hw02_grades.csv"
#: Part of every row's fingerprint: raise it when a change of the grader changes what a row
#: means (rows of an older grader are then graded again).
GRADER_VERSION = "2"
#: ``submission_sha256`` of a refused student (nothing of the folder was read).
REFUSED = "refused"


class GraderError(Exception):
    """A problem of the grader's own (its inputs, its machine): nothing is recorded for it."""


class GradingIncomplete(GraderError):
    """Some students got no row (on a cluster: their task's workers kept dying, or the grader
    failed there); everyone else is recorded, and a rerun grades exactly these."""

    def __init__(self, failures: dict):
        self.failures = dict(failures)
        super().__init__(f"{len(self.failures)} student(s) not graded, no row recorded for them: "
                         f"{', '.join(sorted(self.failures))}. Run the same command again to grade "
                         f"them (the grades recorded are kept)")


# ----------------------------------------------------------------------------- inputs
def grading_fingerprint(sets, helpers, *, time_limit=None, limits=None, unsafe=False) -> str:
    """A short hash of how rows are graded: the grading data, keys, helpers, time limit, limits,
    sandbox mode and :data:`GRADER_VERSION`. Rows graded any other way are redone."""
    h = hashlib.sha256()
    h.update(f"grader {GRADER_VERSION}; {parse_time_limit(current_time_limit(time_limit))} s; "
             f"{limits or sandbox.Limits()!r}; {'unsafe' if unsafe else 'isolated'}\n".encode())
    for s in sets:
        for path in (s.data, s.labels):
            h.update(sandbox.file_digest(path).encode())
        h.update(",".join(map(str, s.evil)).encode())
    for helper in helpers:
        h.update(sandbox.file_digest(helper).encode())
    return h.hexdigest()[:16]


def submission_digest(program: Path) -> str:
    """SHA-256 of ``hw02.py`` (read without following links), ``missing``, or :data:`REFUSED`."""
    try:
        return hashlib.sha256(submission.read_regular_file(program)).hexdigest()
    except submission.SubmissionRefused:
        return REFUSED
    except OSError:
        return "missing"


def find_students(submissions: Path) -> list:
    """The student folders (a link in a folder's place counts, to be refused), never followed."""
    return sorted(e.name for e in os.scandir(submissions) if not e.name.startswith(".")
                  and (e.is_symlink() or e.is_dir(follow_symlinks=False)))


def submission_problems(folder: Path) -> list:
    """Why a student's folder is refused (:func:`autograder.submission.check_submission`), or ``[]``."""
    return submission.check_submission(folder, files=("hw02.py",))


# ----------------------------------------------------------------------------- the grades file
def _valid_row(row: dict) -> str | None:
    """Why a row of the grades file cannot be trusted, or ``None``."""
    if None in row or any(row.get(c) is None for c in COLUMNS):
        return "incomplete row"
    if not row["student"]:
        return "no student"
    if row["status"] not in STATUSES:
        return f"unknown status {row['status']!r}"
    try:
        score = float(row["score"])
        float(row["seconds"])
        for c in ("errors", "missed", "false_flags"):
            if row[c] != "":
                int(row[c])
    except ValueError:
        return "a number that does not parse"
    if not 0.0 <= score <= 100.0:
        return f"score {score} out of range"
    if row["status"] != "ok" and score != 0.0 and not row["errors"]:
        return "a non-zero score without a run"
    if row["status"] == "refused" and (score != 0.0 or row["submission_sha256"] != REFUSED):
        return "a refused submission with a score"
    return None


def read_trusted_rows(out: Path, fingerprint: str, digests: dict, log=print) -> dict:
    """The rows of ``out`` that can be kept: ``{student: row}``; everything else is regraded."""
    if not out.exists() or out.stat().st_size == 0:
        return {}
    text = out.read_text(errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != COLUMNS:
        log(f"{out}: its header is not this grader's ({', '.join(COLUMNS)}); every student is "
            f"graded again (the old file is kept as {out.name}.bad)")
        os.replace(out, out.with_name(out.name + ".bad"))
        return {}
    rows, counts = [], {}
    names = {csv_safe(s): s for s in digests}  # cells as written -> folder names
    for row in reader:
        if row.get("student") in names:
            row["student"] = names[row["student"]]
        rows.append(row)
        counts[row.get("student")] = counts.get(row.get("student"), 0) + 1
    trusted = {}
    for row in rows:
        student = row.get("student")
        problem = _valid_row(row)
        if problem is None and counts[student] > 1:
            problem = "more than one row"
        if problem is None and row["grading_data"] != fingerprint:
            problem = "graded on other data or settings"
        if problem is None and student in digests and row["submission_sha256"] != digests[student]:
            problem = "hw02.py changed since it was graded"
        if problem is None and student not in digests:
            problem = "no such student folder"
        if problem:
            log(f"{out}: row for {student!r} not kept ({problem}); graded again")
        else:
            trusted[student] = row
    return trusted


def write_rows_atomically(out: Path, rows: list) -> None:
    """Replace ``out`` by ``rows`` (sorted by student) in one step: never half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            writer.writeheader()
            writer.writerows(csv_safe_row(row) for row in sorted(rows, key=lambda r: r["student"]))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def grade_row(student: str, grade: Grade, author: str, digest: str, fingerprint: str) -> dict:
    def blank(v):
        return "" if v is None else v

    return dict(student=student, errors=blank(grade.errors), missed=blank(grade.missed),
                false_flags=blank(grade.false_flags), score=f"{grade.score:.1f}", status=grade.status,
                reason=grade.reason, seconds=f"{grade.seconds:.1f}", author_block=author,
                sandbox="isolated" if grade.isolated else "unsafe",
                submission_sha256=digest, grading_data=fingerprint)


def author_block_of(program: Path):
    """The author-block check of a submission (``missing`` when unreadable or refused)."""
    try:
        source = submission.read_regular_file(program)[:MAX_PROGRAM_BYTES].decode("utf-8", "replace")
    except submission.SubmissionRefused as exc:
        return "missing", f"not read ({exc})"
    except OSError:
        return "missing", "no hw02.py"
    block = check_author_block(source)
    return block.status, block.reason


# ----------------------------------------------------------------------------- grading
def grade_all(submissions, sets, out, *, time_limit=None, jobs=1, helpers=None,
              limits=None, unsafe=False, scheduler=None, tls=None, log=print) -> list:
    """Grade every student of ``submissions`` without a trusted row in ``out``; return the new rows.

    ``sets`` are :class:`autograder.hw02.data.FinalSet` (checked data, labels and key).
    ``time_limit``: a ``timeout`` duration; by default ``$NOISYLABELS_HW02_TIME_LIMIT``, else 3m.
    A student whose folder is not regular files only gets a ``refused`` row and is never run.
    ``scheduler``: ``None`` grades here (``jobs`` at once); a Dask scheduler address,
    ``local:N`` or a :class:`distributed.Client` runs the programs on Dask workers and
    scores them here (:mod:`autograder.hw02.dask_grading`; the keys never leave this process).
    Only over TLS: an address must be ``tls://``, with the client's credentials in ``tls``
    (``{"tls_ca_file", "tls_client_cert", "tls_client_key"}`` paths; see
    :func:`autograder.hw02.dask_grading.client_security`).
    Raises :class:`GraderError` for the grader's own problems, before grading anyone, and
    :class:`GradingIncomplete` at the end if some students could not be graded.
    """
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise GraderError(f"{submissions}: no such folder of submissions")
    if not sets:
        raise GraderError("no grading data given")
    if scheduler is not None and (jobs or 1) != 1:
        raise GraderError("give --jobs or --scheduler, not both (on a cluster, each worker slot runs one "
                          "submission at a time)")
    helpers = course_helpers() if helpers is None else [Path(h) for h in helpers]
    for helper in helpers:
        if not helper.is_file():
            raise GraderError(f"helper {helper}: no such file")
    if scheduler is None and not unsafe and sandbox.sandbox_problem():
        raise GraderError(f"cannot isolate the submissions: {sandbox.sandbox_problem()}. Fix that, "
                          f"or pass --unsafe-sandbox to run them with plain limits as this user "
                          f"(recorded as 'unsafe' in every row)")
    if scheduler is None and not unsafe:
        for weakness in sandbox.weaker_isolation():
            log(f"weaker isolation on this machine: {weakness}")
    time_limit = current_time_limit(time_limit)
    fingerprint = grading_fingerprint(sets, helpers, time_limit=time_limit, limits=limits, unsafe=unsafe)
    students = find_students(submissions)
    refused = {s: p for s in students if (p := submission_problems(submissions / s))}
    digests = {s: REFUSED if s in refused else submission_digest(submissions / s / "hw02.py")
               for s in students}
    refused.update({s: ["hw02.py changed into something that is not a regular file"]
                    for s in students if digests[s] == REFUSED and s not in refused})
    kept = read_trusted_rows(out, fingerprint, digests, log=log)
    todo = [s for s in students if s not in kept]
    rows = dict(kept)
    lock = threading.Lock()
    write_rows_atomically(out, list(rows.values()))
    log_path = out.with_name(out.name + ".log")
    if kept:
        log(f"{len(kept)} students already graded in {out}; grading the other {len(todo)}")
    new_rows = []

    def record(student, grade):
        if student in refused:
            author, author_reason = "missing", "not read (submission refused)"
        else:
            author, author_reason = author_block_of(submissions / student / "hw02.py")
        row = grade_row(student, grade, author, digests[student], fingerprint)
        line = f"{student}: {row['score']} % ({row['status']})"
        if grade.reason:
            line += f": {grade.reason}"
        if author != "ok":
            line += f"; author block {author}: {author_reason}"
        line = submission.escape_control(line, keep_newlines=False)
        with lock:
            rows[student] = row
            write_rows_atomically(out, list(rows.values()))
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "a") as fh:
                fh.write(line + "\n")
                if grade.status == "crashed" and grade.stderr_tail:
                    tail = submission.escape_control(grade.stderr_tail.strip()[-800:])
                    fh.write("    " + tail.replace("\n", "\n    ") + "\n")
            log(line)
            new_rows.append(row)

    for student in [s for s in todo if s in refused]:  # never read, never run
        record(student, Grade(status="refused", score=0.0, reason="; ".join(refused[student]),
                              isolated=not unsafe))
    todo = [s for s in todo if s not in refused]

    if scheduler is not None:
        if todo:
            _grade_on_cluster(scheduler, submissions, todo, sets, helpers, record, time_limit=time_limit,
                              limits=limits, unsafe=unsafe, tls=tls, log=log)
        return new_rows

    datasets = [(s.data, s.labels, s.evil, s.n_digits) for s in sets]

    def one(student):
        grade = grade_submission(submissions / student / "hw02.py", datasets, time_limit=time_limit,
                                 helpers=helpers, limits=limits, unsafe=unsafe)
        record(student, grade)

    with ThreadPoolExecutor(max_workers=max(1, jobs or 1)) as pool:
        for future in [pool.submit(one, s) for s in todo]:
            future.result()  # the grader's own errors stop the run; rows written so far stay
    return new_rows


def _grade_on_cluster(scheduler, submissions, todo, sets, helpers, record, *, time_limit, limits,
                      unsafe, tls, log):
    """The programs run on Dask workers (:mod:`autograder.hw02.dask_grading`); scoring happens here."""
    try:
        from autograder.hw02 import dask_grading
    except ImportError as exc:
        raise GraderError(f"--scheduler needs Dask's distributed package ({exc}); "
                          f"pip install 'distributed>=2024.1'") from None
    from distributed import Client

    keys = [s.evil for s in sets]  # stay in this process: workers get run results' inputs only
    own = not isinstance(scheduler, Client)
    client = cluster = None
    try:
        if own:
            try:
                client, cluster = dask_grading.connect(scheduler, tls=tls, log=log)
            except (ValueError, ConnectionError, OSError) as exc:
                raise GraderError(str(exc)) from None
        else:
            client = scheduler
        try:
            slots = dask_grading.check_workers(client, unsafe=unsafe)
        except RuntimeError as exc:
            raise GraderError(str(exc)) from None
        log(f"grading {len(todo)} students on {slots} Dask worker slot(s) at {client.scheduler.address}")

        def spec_of(student):
            return dask_grading.task_payload(submissions / student / "hw02.py", sets, helpers,
                                             time_limit=time_limit, limits=limits, unsafe=unsafe)

        failures = dask_grading.run_on_cluster(
            client, todo, spec_of,
            lambda student, runs: record(student, score_runs(runs, keys, isolated=not unsafe)), log=log)
    finally:
        if own and client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    if failures:
        raise GradingIncomplete(failures)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.hw02.grade",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", help="folder of <student>/hw02.py")
    parser.add_argument("--final", default=None,
                        help="instructor folder with set*/ (from python -m autograder.hw02.data make-final)")
    parser.add_argument("--data", action="append", default=[], help="IDX digits file (repeatable)")
    parser.add_argument("--labels", action="append", default=[], help="IDX labels file (repeatable)")
    parser.add_argument("--key", action="append", default=[], help="answer key file (repeatable)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"grades CSV (default {DEFAULT_OUT})")
    parser.add_argument("--time-limit", default=None,
                        help=f"timeout duration for each run (default ${TIME_LIMIT_ENV} if set, else 3m: "
                             f"`timeout -k 1s 3m`)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="submissions graded at once (default 1: each program gets the machine's cores)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="grade on a Dask cluster, only over TLS: a scheduler address (tls://host:8786, "
                             "with --tls-ca-file, --tls-cert, --tls-key), or local:N for a local cluster of N "
                             "single-slot workers (temporary credentials); the keys stay here "
                             "(see autograder/README.md, section 5)")
    for flag, what in (("--tls-ca-file", "the cluster's CA certificate"),
                       ("--tls-cert", "the client's certificate (may hold its key too)"),
                       ("--tls-key", "the client's private key")):
        parser.add_argument(flag, default=None, metavar="PEM",
                            help=f"{what}, for a tls:// scheduler (default: Dask's configuration, "
                                 f"distributed.comm.tls.*)")
    parser.add_argument("--helper", action="append", default=None,
                        help="file placed next to hw02.py (default: the course's mnist_util.py)")
    parser.add_argument("--no-similarity", action="store_true",
                        help="skip the similarity report written after grading")
    parser.add_argument("--unsafe-sandbox", action="store_true",
                        help="where namespaces are unavailable: run with plain limits as this user "
                             "(weaker; recorded in every row)")
    args = parser.parse_args(argv)
    os.umask(0o077)  # grades, log and similarity report: the instructor's only
    try:
        if args.final and (args.data or args.labels or args.key):
            raise GraderError("give --final or --data/--labels/--key, not both")
        if args.final:
            sets = load_final_sets(args.final)
        else:
            if not args.data or not (len(args.data) == len(args.labels) == len(args.key)):
                raise GraderError("give --final DIR, or as many --data as --labels and --key")
            sets = [validate_set(d, lab, k) for d, lab, k in zip(args.data, args.labels, args.key)]
        current_time_limit(args.time_limit)
        rows = grade_all(args.submissions, sets, args.out, time_limit=args.time_limit, jobs=args.jobs,
                         helpers=args.helper, unsafe=args.unsafe_sandbox, scheduler=args.scheduler,
                         tls={"tls_ca_file": args.tls_ca_file, "tls_client_cert": args.tls_cert,
                              "tls_client_key": args.tls_key})
    except GradingIncomplete as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (GraderError, ValueError, FileNotFoundError, sandbox.SandboxUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("nothing was recorded for this problem; grades already in the file are kept", file=sys.stderr)
        return 2
    print(f"graded {len(rows)} submissions; grades in {args.out}")
    if not args.no_similarity:
        write_similarity_report(args.submissions, args.out)
    return 0


def write_similarity_report(submissions, out) -> None:
    """The similarity report of the whole class, next to the grades (``<out>`` stem + ``_similarity``)."""
    from autograder.hw02.similarity import similarity_report

    out = Path(out)
    csv_path = out.with_name(out.stem + "_similarity.csv")
    html_path = out.with_name(out.stem + "_similarity.html")
    try:
        similarity_report(submissions, csv_path, html=html_path)  # it says what it wrote
    except Exception as exc:  # a report problem never undoes the grades
        print(f"similarity report not written: {exc}", file=sys.stderr)
    for path in (csv_path, html_path):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, 0o600)


if __name__ == "__main__":
    sys.exit(main())
