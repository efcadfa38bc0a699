"""Grade homework 2 ("evil twins") submissions outside nbgrader.

    python -m autograder.evil_twins SUBMISSIONS_DIR --data digits_ubyte.gz \\
        --labels labels_ubyte.gz --key key.txt --out grades.csv [--time-limit 3m] [--jobs N]

``SUBMISSIONS_DIR/<student>/hw02.py`` is run for every student, exactly as the homework's
rules say (``timeout -k 1s 3m python3 hw02.py --data ... --labels ...``) in a sandbox
(:func:`noisylabels.evil_twins.run_submission`). ``--data``, ``--labels`` and ``--key``
may be repeated for several data sets: the score is the mean of their scores.
``grades.csv`` gets one row per student as soon as the student is graded
(``student, errors, missed, false_flags, score, status, seconds``); rerun after an
interruption, it keeps the rows already written and grades only the others. The reasons
for a score of 0 are printed and written to ``<out>.log``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from noisylabels.evil_twins import (
    DEFAULT_TIME_LIMIT,
    Grade,
    course_helpers,
    grade_submission,
    parse_time_limit,
    read_key,
)

COLUMNS = ["student", "errors", "missed", "false_flags", "score", "status", "seconds"]


def already_graded(out: Path) -> set:
    """Students that ``out`` already has a row for."""
    if not out.exists():
        return set()
    with open(out, newline="") as fh:
        return {row["student"] for row in csv.DictReader(fh) if row.get("student")}


def find_students(submissions: Path) -> list:
    return sorted(p.name for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))


def grade_all(submissions, datasets, out, *, time_limit=DEFAULT_TIME_LIMIT, jobs=None,
              helpers=None, scratch_root=None, limits=None, log=print) -> list:
    """Grade every student folder of ``submissions`` not yet in ``out``; return the new rows.

    ``datasets`` is a list of ``(data_path, labels_path, key_path)``.
    """
    submissions, out = Path(submissions), Path(out)
    sets = [(Path(d), Path(lab), read_key(k)) for d, lab, k in datasets]
    helpers = course_helpers() if helpers is None else [Path(h) for h in helpers]
    done = already_graded(out)
    todo = [s for s in find_students(submissions) if s not in done]
    lock = threading.Lock()
    new_file = not out.exists() or out.stat().st_size == 0
    if new_file:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as fh:
            csv.DictWriter(fh, COLUMNS).writeheader()
    log_path = out.with_name(out.name + ".log")
    if done:
        log(f"{len(done)} students already in {out}; grading the other {len(todo)}")
    rows = []

    def one(student):
        program = submissions / student / "hw02.py"
        if not program.is_file():
            grade = Grade(status="crashed", score=0.0, reason="no hw02.py in the submission")
        else:
            grade = grade_submission(program, sets, time_limit=time_limit, helpers=helpers,
                                     scratch_root=scratch_root, limits=limits)
        row = grade.row(student)
        with lock:
            with open(out, "a", newline="") as fh:
                csv.DictWriter(fh, COLUMNS).writerow(row)
            line = f"{student}: {row['score']} % ({row['status']})"
            if grade.reason:
                line += f": {grade.reason}"
            with open(log_path, "a") as fh:
                fh.write(line + "\n")
                if grade.status == "crashed" and grade.stderr_tail:
                    fh.write("    " + grade.stderr_tail.strip()[-800:].replace("\n", "\n    ") + "\n")
            log(line)
            rows.append(row)

    with ThreadPoolExecutor(max_workers=max(1, jobs or os.cpu_count() or 1)) as pool:
        list(pool.map(one, todo))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.evil_twins", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", help="folder of <student>/hw02.py")
    parser.add_argument("--data", action="append", required=True, help="IDX digits file (repeatable)")
    parser.add_argument("--labels", action="append", required=True, help="IDX labels file (repeatable)")
    parser.add_argument("--key", action="append", required=True, help="answer key file (repeatable)")
    parser.add_argument("--out", default="grades.csv", help="grades CSV (default grades.csv)")
    parser.add_argument("--time-limit", default=DEFAULT_TIME_LIMIT,
                        help="timeout duration for each run (default 3m: `timeout -k 1s 3m`)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(),
                        help="submissions graded in parallel (default: the number of cores)")
    parser.add_argument("--helper", action="append", default=None,
                        help="file copied next to hw02.py (default: the course's mnist_util.py)")
    args = parser.parse_args(argv)
    if not (len(args.data) == len(args.labels) == len(args.key)):
        parser.error("give as many --data as --labels and --key")
    parse_time_limit(args.time_limit)
    rows = grade_all(args.submissions, list(zip(args.data, args.labels, args.key)), args.out,
                     time_limit=args.time_limit, jobs=args.jobs, helpers=args.helper)
    print(f"graded {len(rows)} submissions; grades in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
