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


def _notebook(path: Path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A lesson")] + [nbformat.v4.new_code_cell(s) for s in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def tiny_course(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    _notebook(tmp_path / "lessons" / "01_passes.ipynb",
              "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]); plt.show()",
              "import noisylabels as nl\nx = 2 + 2\nassert x == 4\nnl.report_result(f'two and two make {x}')")
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
