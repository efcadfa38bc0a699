"""``noisylabels autograde``: a class graded in parallel by the real nbgrader, merged into one gradebook.

Quick: the merge of a scratch gradebook into the course gradebook (nbgrader's API), and a
per-class reference computed once for processes sharing a cache folder. Slow: three
students of homework 1 (honest, broken, refused for a link in the submission) graded with
``--scheduler local:2`` in a real course copy, compared with serial ``nbgrader autograde``
of the same submissions in another copy.
"""

import csv
import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry

from autograder.nbgrader_plugins.class_autograde import (
    REPORT, build_scratch_gradebook, export_assignment, export_submission, merge_submission,
)
from noisylabels.course import new_gradebook

HW = "hw01_label_corruption"
COURSE = "noisy-labels"


def _define(gb):
    """An assignment of one notebook: two grade cells (one a written answer), a task cell."""
    due = datetime.datetime(2026, 11, 1, 12, 0)
    gb.update_or_create_assignment("hw", duedate=due)
    gb.update_or_create_notebook("nb", "hw")
    gb.update_or_create_grade_cell("test_a", "nb", "hw", max_score=2, cell_type="code")
    gb.update_or_create_grade_cell("answer", "nb", "hw", max_score=3, cell_type="markdown")
    gb.update_or_create_solution_cell("answer", "nb", "hw")
    gb.update_or_create_solution_cell("code_a", "nb", "hw")
    gb.update_or_create_task_cell("task", "nb", "hw", max_score=1, cell_type="markdown")
    gb.update_or_create_source_cell("test_a", "nb", "hw", cell_type="code", locked=True,
                                    source="assert f() == 1", checksum="abc")


def _autograde_in(gb, student, auto, *, timestamp, comment="No response."):
    """What autograde stores: the timestamp, automatic scores and comments, a late penalty."""
    gb.update_or_create_submission("hw", student, timestamp=timestamp)
    for cell, score in auto.items():
        grade = gb.find_grade(cell, "nb", "hw", student)
        grade.auto_score = score
        grade.needs_manual_grade = score is None or grade.manual_score is not None
    gb.find_comment("code_a", "nb", "hw", student).auto_comment = comment
    gb.find_submission_notebook("nb", "hw", student).late_submission_penalty = 0.5
    gb.db.commit()


def test_merge_replaces_autograde_results_and_keeps_what_graders_entered(tmp_path):
    course_url = new_gradebook(tmp_path / "course.db")
    with Gradebook(course_url, COURSE) as course:
        _define(course)
        course.update_or_create_student("ada", first_name="Ada", email="ada@example.org")
        _autograde_in(course, "ada", {"test_a": 0.0, "answer": None, "task": None},
                      timestamp="2026-11-02 10:00:00", comment="old")
        grade = course.find_grade("answer", "nb", "hw", "ada")
        grade.manual_score, grade.extra_credit = 2.5, 0.5
        course.find_comment("answer", "nb", "hw", "ada").manual_comment = "well argued"
        course.find_submission_notebook("nb", "hw", "ada").flagged = True
        course.grant_extension("hw", "ada", days=2)
        definition = export_assignment(course, "hw")
        earlier = export_submission(course, "hw", "ada")

    scratch_url = new_gradebook(tmp_path / "scratch.db")
    build_scratch_gradebook(scratch_url, COURSE, definition, "ada", {"first_name": "Ada"}, earlier)
    with Gradebook(scratch_url, COURSE) as scratch:
        # the scratch gradebook holds what autograde reads: the extension and the manual score
        assert scratch.find_submission("hw", "ada").extension == datetime.timedelta(days=2)
        assert scratch.find_grade("answer", "nb", "hw", "ada").manual_score == 2.5
        assert export_assignment(scratch, "hw") == definition
        _autograde_in(scratch, "ada", {"test_a": 2.0, "answer": None, "task": None}, timestamp="2026-11-03 09:00:00")
        result = export_submission(scratch, "hw", "ada")

    with Gradebook(course_url, COURSE) as course:
        course.find_grade("test_a", "nb", "hw", "ada").manual_score = 1.0  # entered in formgrader meanwhile
        course.db.commit()
        merge_submission(course, result)
        assert len(course.find_assignment("hw").submissions) == 1
        sub = course.find_submission("hw", "ada")
        assert sub.timestamp == datetime.datetime(2026, 11, 3, 9, 0)
        assert sub.extension == datetime.timedelta(days=2)
        test_a, answer = (course.find_grade(c, "nb", "hw", "ada") for c in ("test_a", "answer"))
        assert test_a.auto_score == 2.0 and test_a.manual_score == 1.0 and test_a.needs_manual_grade
        assert answer.auto_score is None and answer.manual_score == 2.5 and answer.extra_credit == 0.5
        assert course.find_comment("code_a", "nb", "hw", "ada").auto_comment == "No response."
        assert course.find_comment("answer", "nb", "hw", "ada").manual_comment == "well argued"
        notebook = course.find_submission_notebook("nb", "hw", "ada")
        assert notebook.flagged and notebook.late_submission_penalty == 0.5
        assert len(notebook.grades) == 3 and len(notebook.comments) == 3
        assert course.find_student("ada").email == "ada@example.org"


def test_merge_of_a_new_student_creates_the_submission_and_a_bad_record_changes_nothing(tmp_path):
    course_url = new_gradebook(tmp_path / "course.db")
    with Gradebook(course_url, COURSE) as course:
        _define(course)
        definition = export_assignment(course, "hw")
    scratch_url = new_gradebook(tmp_path / "scratch.db")
    build_scratch_gradebook(scratch_url, COURSE, definition, "bo")
    with Gradebook(scratch_url, COURSE) as scratch:
        _autograde_in(scratch, "bo", {"test_a": 1.0, "answer": None, "task": None}, timestamp="2026-11-03 09:00:00")
        result = export_submission(scratch, "hw", "bo")
    with Gradebook(course_url, COURSE) as course:
        bad = {**result, "notebooks": [{**result["notebooks"][0],
                                         "grades": result["notebooks"][0]["grades"] + [
                                             {"cell": "gone", "auto_score": 1.0, "manual_score": None,
                                              "extra_credit": None, "needs_manual_grade": False}]}]}
        with pytest.raises(ValueError, match="gone"):
            merge_submission(course, bad)
        with pytest.raises(MissingEntry):
            course.find_submission("hw", "bo")  # the failed merge left nothing half-written
        merge_submission(course, result)
        assert course.find_grade("test_a", "nb", "hw", "bo").auto_score == 1.0
        assert course.find_submission_notebook("nb", "hw", "bo").late_submission_penalty == 0.5


COUNTING = """
import os, sys
from pathlib import Path
from autograder.nbgrader_plugins.outside_kernel import once_per_assignment

@once_per_assignment
def reference(n):
    with open(os.environ["COUNT_FILE"], "a") as fh:
        fh.write("computed\\n")
    return {"value": n * 2}

print(reference(21)["value"], reference(21)["value"])
"""


@pytest.mark.slow  # three Python processes importing nbgrader
def test_a_reference_is_computed_once_for_processes_sharing_the_run_cache(tmp_path):
    cache, count = tmp_path / "cache", tmp_path / "count"
    cache.mkdir()
    env = dict(os.environ, NOISYLABELS_REFERENCE_CACHE=str(cache), COUNT_FILE=str(count))
    procs = [subprocess.Popen([sys.executable, "-c", COUNTING], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outputs == ["42 42"] * 3
    assert count.read_text().splitlines() == ["computed"]
    # without the cache folder, each process computes its own (once: lru_cache)
    env.pop("NOISYLABELS_REFERENCE_CACHE")
    subprocess.run([sys.executable, "-c", COUNTING], env=env, check=True, capture_output=True, timeout=120)
    assert count.read_text().splitlines() == ["computed"] * 2


def _class(tmp_path, name):
    """A course copy with hw01 registered and three submissions: honest, broken, refused (a link)."""
    from test_nbgrader_homeworks import HOMEWORKS, _course, _run, _submission

    course, env = _course(tmp_path / name, HW)
    _run([sys.executable, "-m", "noisylabels.cli", "assignments", HW, "--register"], course, env)
    released = course / "assignments" / HW / f"{HW}.ipynb"
    source = course / "solutions" / HW / f"{HW}.ipynb"
    for student, nb in {"honest": _submission(released, source),
                        "broken": _submission(released, source, broken=HOMEWORKS[HW]["break"]),
                        "linked": _submission(released, source)}.items():
        folder = course / "submitted" / student / HW
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{HW}.ipynb")
        (folder / "timestamp.txt").write_text("2026-11-02 10:00:00.000000 UTC")
    os.symlink(course / "nbgrader_config.py", course / "submitted" / "linked" / HW / "notes.txt")
    return course, env


def _grades(course):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE) as gb:
        out = {}
        for student in gb.students:
            try:
                sub = gb.find_submission(HW, student.id)
            except MissingEntry:
                out[student.id] = None
                continue
            out[student.id] = {
                "timestamp": sub.timestamp,
                "grades": sorted((g.notebook.name, g.name, g.auto_score, g.manual_score, g.needs_manual_grade)
                                 for nb in sub.notebooks for g in nb.grades),
                "comments": sorted((c.notebook.name, c.name, c.auto_comment) for nb in sub.notebooks for c in nb.comments),
                "penalty": [nb.late_submission_penalty for nb in sub.notebooks],
            }
        return out


@pytest.mark.slow
def test_class_autograde_on_two_workers_gives_the_gradebook_serial_autograde_gives(tmp_path, require_sandbox):
    parallel, env = _class(tmp_path, "parallel")
    serial, _ = _class(tmp_path, "serial")

    run = subprocess.run([sys.executable, "-m", "noisylabels.cli", "autograde", HW, "--scheduler", "local:2"],
                         cwd=parallel, env=env, capture_output=True, text=True, timeout=3600)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]  # 1: one student failed
    table = run.stdout
    serial_run = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", HW], cwd=serial, env=env,
                                capture_output=True, text=True, timeout=3600)
    assert serial_run.returncode == 1, serial_run.stderr[-3000:]  # nbgrader: the refused student fails

    ours, theirs = _grades(parallel), _grades(serial)
    assert set(ours) == set(theirs) == {"honest", "broken", "linked"}
    assert ours == theirs
    points = {s: sum(g[2] or 0 for g in ours[s]["grades"]) for s in ("honest", "broken")}
    assert points["honest"] == 12.0 and 0 < points["broken"] < points["honest"], points
    assert ours["linked"] is None  # refused: entered as a student, no submission, as serial autograde does

    # the failure is the refused student's only, with the reason, in the table and the report
    rows = {r["student"]: r for r in csv.DictReader(open(parallel / REPORT.format(assignment=HW)))}
    assert {s: r["status"] for s, r in rows.items()} == {"honest": "graded", "broken": "graded", "linked": "failed"}
    assert "notes.txt is a symbolic link" in rows["linked"]["reason"]
    assert "symbolic link" in next(line for line in table.splitlines() if line.startswith("linked"))
    # formgrader's data: the autograded notebooks, graded outside the kernel
    for student in ("honest", "broken"):
        text = (parallel / "autograded" / student / HW / f"{HW}.ipynb").read_text()
        assert "graded outside your notebook" in text
    assert not (parallel / "autograded" / "linked").exists()
    assert not list((parallel / ".grading_cache").iterdir())  # the run's cache is gone

    # a second run without --force grades nobody again; --student with --force regrades one
    again = subprocess.run([sys.executable, "-m", "noisylabels.cli", "autograde", HW, "--scheduler", "local:1",
                            "--student", "honest"], cwd=parallel, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "skipped" in again.stdout, again.stdout[-2000:] + again.stderr[-2000:]
    assert _grades(parallel) == ours
