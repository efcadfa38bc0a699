"""The course tooling: clean notebooks and the `noisylabels build` main job, on a small
course the tests write (real nbclient kernels, no mocks)."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from noisylabels import course
from noisylabels.build import build
from noisylabels.results import RESULT_MARKER


def _notebook(path: Path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A lesson")] + [nbformat.v4.new_code_cell(s) for s in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def tiny_course(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    # the lessons print the result marker themselves (a kernel without the course library starts in
    # a fraction of the time); the solution reports through nl.report_result, as the course's notebooks do
    _notebook(tmp_path / "lessons" / "01_passes.ipynb",
              "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]); plt.show()",
              f"x = 2 + 2\nassert x == 4\nprint('{RESULT_MARKER}', f'two and two make {{x}}')")
    _notebook(tmp_path / "lessons" / "02_fails.ipynb", "raise ValueError('the lesson broke')")
    _notebook(tmp_path / "solutions" / "hw01_demo" / "hw01.ipynb",
              "open('data.txt').read()\nimport noisylabels as nl\nnl.report_result('read the data file')")
    (tmp_path / "solutions" / "hw01_demo" / "data.txt").write_text("hello")
    return tmp_path


def test_build_runs_every_notebook_reports_failures_and_keeps_going(tiny_course):
    runs = build(root=tiny_course, out="build", size="quick", progress=False)
    by_name = {r.notebook: r for r in runs}
    assert list(by_name) == ["lessons/01_passes.ipynb", "lessons/02_fails.ipynb", "solutions/hw01_demo/hw01.ipynb"]
    assert by_name["lessons/01_passes.ipynb"].status == "ok"
    assert by_name["lessons/01_passes.ipynb"].result == "two and two make 4"
    assert by_name["lessons/02_fails.ipynb"].status == "failed"
    assert "ValueError: the lesson broke" in by_name["lessons/02_fails.ipynb"].error
    # the notebook after the failing one still ran, in a copy of its folder
    assert by_name["solutions/hw01_demo/hw01.ipynb"].status == "ok"
    assert by_name["solutions/hw01_demo/hw01.ipynb"].result == "read the data file"
    out = tiny_course / "build"
    executed = nbformat.read(out / "lessons" / "01_passes.ipynb", as_version=4)
    assert any(o.get("output_type") == "stream" for o in executed.cells[2].outputs)
    assert (out / "lessons" / "01_passes.html").stat().st_size > 1000
    assert list((out / "lessons" / "01_passes_figures").glob("*.png"))
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["ok", "failed", "ok"]
    assert "| lessons/02_fails.ipynb | failed |" in (out / "summary.md").read_text()
    # nothing was written into the source folders
    assert sorted(p.name for p in (tiny_course / "solutions" / "hw01_demo").iterdir()) == ["data.txt", "hw01.ipynb"]


def test_build_with_two_jobs_runs_notebooks_side_by_side_in_the_size_asked_and_keeps_the_order(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    stamp = ("import os, time\nstart = time.time(); time.sleep({})\n"
             f"print('{RESULT_MARKER}', "
             "f\"{{start:.3f}} {{time.time():.3f}} {{os.environ['NOISYLABELS_SIZE']}} {{os.environ['OMP_NUM_THREADS']}}\")")
    # the first two sleep long enough to overlap if they run side by side; the third need not wait
    for name, seconds in (("01_a", 3), ("02_b", 3), ("03_c", 0)):
        _notebook(tmp_path / "lessons" / f"{name}.ipynb", stamp.format(seconds))
    runs = build(root=tmp_path, out="build", size="quick", progress=False, html=False, jobs=2)
    assert [r.notebook for r in runs] == [f"lessons/{n}.ipynb" for n in ("01_a", "02_b", "03_c")]
    assert [r.status for r in runs] == ["ok"] * 3, [r.error for r in runs]
    spans = [r.result.split() for r in runs]
    assert all(size == "quick" and threads == "1" for _, _, size, threads in spans)
    (a0, a1), (b0, b1) = [(float(s[0]), float(s[1])) for s in spans[:2]]
    assert a0 < b1 and b0 < a1, "the first two notebooks did not run at the same time"


def test_build_command_prints_the_table_and_exits_nonzero_on_failure(tiny_course):
    out = subprocess.run([sys.executable, "-m", "noisylabels.cli", "--root", str(tiny_course), "build",
                          "--no-progress", "--no-html", "01_passes", "02_fails"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1
    assert "| notebook | status | seconds | result |" in out.stdout
    assert "two and two make 4" in out.stdout
    assert "FAILED lessons/02_fails.ipynb: ValueError: the lesson broke" in out.stderr


def test_build_command_exits_zero_when_every_notebook_runs(tiny_course):
    out = subprocess.run([sys.executable, "-m", "noisylabels.cli", "--root", str(tiny_course), "build",
                          "--no-progress", "--no-html", "01_passes"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "1 of 1 notebooks ran" in out.stdout


def test_clean_notebook_strips_outputs_and_editor_metadata_but_keeps_nbgrader(tmp_path):
    path = _notebook(tmp_path / "n.ipynb", "print(1)")
    nb = nbformat.read(path, as_version=4)
    cell = nb.cells[1]
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.execution_count = 3
    cell.metadata.update({"collapsed": True, "nbgrader": {"grade": True, "points": 2}, "tags": ["x"]})
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, path)
    assert course.notebook_problems(path)
    assert course.clean_notebook(path) is True
    assert course.notebook_problems(path) == []
    cleaned = nbformat.read(path, as_version=4).cells[1]
    assert cleaned.outputs == [] and cleaned.metadata == {"nbgrader": {"grade": True, "points": 2}, "tags": ["x"]}
    assert course.clean_notebook(path) is False


def test_committed_notebooks_have_no_outputs(root):
    notebooks = course.all_notebooks(root) + sorted((root / "assignments").glob("*/*.ipynb"))
    problems = {str(p.relative_to(root)): course.notebook_problems(p) for p in notebooks}
    assert {k: v for k, v in problems.items() if v} == {}, "run `noisylabels clean`"


def test_lessons_and_solutions_are_found_in_course_order(root):
    lessons = course.lesson_notebooks(root)
    assert [p.name for p in lessons] == sorted(p.name for p in lessons)
    assert all(p.parent.parent.name == "solutions" for p in course.solution_notebooks(root))


def _nbgrader_cell(source, **nbg):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"schema_version": 3, "locked": nbg.get("locked", False),
                                 "solution": nbg.get("solution", False), "grade": nbg.get("grade", False),
                                 "grade_id": nbg["grade_id"], **({"points": nbg["points"]} if "points" in nbg else {})}
    return cell


@pytest.fixture
def nbgrader_course(tmp_path, root):
    """A course folder with the project's nbgrader config and one small source assignment."""
    (tmp_path / "lessons").mkdir()
    shutil_copy = __import__("shutil").copy
    shutil_copy(root / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Part 1 (2 points)"),
        _nbgrader_cell('def add(a, b):\n    """Return a + b."""\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION',
                       solution=True, grade_id="add"),
        _nbgrader_cell("assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-2, 2) == 0\n### END HIDDEN TESTS",
                       grade=True, locked=True, grade_id="test_add", points=2),
    ]
    folder = tmp_path / "solutions" / "hw01_demo"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "demo.ipynb")
    (folder / "data.txt").write_text("data for students\n")
    return tmp_path


def test_generated_assignment_has_stubs_no_hidden_tests_and_the_data_files(nbgrader_course):
    (generated,) = course.generate_assignments(nbgrader_course)
    assert generated == nbgrader_course / "assignments" / "hw01_demo"
    text = (generated / "demo.ipynb").read_text()
    assert "raise NotImplementedError()" in text and "return a + b" not in text
    assert "HIDDEN TESTS" not in text and "add(-2, 2)" not in text and "add(1, 2) == 3" in text
    assert (generated / "data.txt").read_text() == "data for students\n"
    assert course.notebook_problems(generated / "demo.ipynb") == []
    assert not (nbgrader_course / "gradebook.db").exists(), "generation must not touch the instructor's gradebook"


@pytest.mark.slow
def test_throwaway_gradebook_is_stamped_with_the_revision_nbgrader_itself_gives_a_new_one(tmp_path):
    import sqlite3

    from nbgrader.api import Gradebook, get_alembic_version

    url = course.new_gradebook(tmp_path / "gradebook.db")
    with Gradebook(url) as gradebook:  # nbgrader adds its tables to it without complaint
        gradebook.add_student("s")
    with sqlite3.connect(tmp_path / "gradebook.db") as db:
        stamped = db.execute("SELECT version_num FROM alembic_version").fetchall()
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert stamped == [(get_alembic_version(),)]  # what nbgrader asks the alembic command for
    assert {"assignment", "notebook", "student", "grade"} <= tables
    with pytest.raises(FileExistsError, match="needs a path with no file"):
        course.new_gradebook(tmp_path / "gradebook.db")


def test_drift_check_catches_hand_edits_and_stale_releases(nbgrader_course):
    course.generate_assignments(nbgrader_course)
    assert course.assignment_drift(nbgrader_course) == []
    released = nbgrader_course / "assignments" / "hw01_demo"
    (released / "data.txt").write_text("edited by hand\n")
    (released / "notes.txt").write_text("extra\n")
    problems = course.assignment_drift(nbgrader_course)
    assert "assignments/hw01_demo/data.txt differs from the generated version" in problems
    assert "assignments/hw01_demo/notes.txt is not generated from solutions/" in problems


@pytest.mark.slow
def test_nbgrader_validate_passes_the_source_and_fails_the_released_stub(nbgrader_course):
    course.generate_assignments(nbgrader_course)
    ok, out = course.nbgrader_validate(nbgrader_course / "solutions" / "hw01_demo" / "demo.ipynb")
    assert ok, out
    ok, out = course.nbgrader_validate(nbgrader_course / "assignments" / "hw01_demo" / "demo.ipynb", invert=True)
    assert ok, out
    # and the released stub does not pass plain validation
    ok, out = course.nbgrader_validate(nbgrader_course / "assignments" / "hw01_demo" / "demo.ipynb")
    assert not ok and "NotImplementedError" in out
