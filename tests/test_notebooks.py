"""Every lesson notebook executes headless in its quick setting and reports its result.

Slow: runs when CI=true or with --run-slow. The solution notebooks execute in
tests/test_assignments.py, under `nbgrader validate`.
"""

import shutil

import pytest

from noisylabels.build import execute_notebook
from noisylabels.course import find_root, lesson_notebooks

LESSONS = lesson_notebooks(find_root())


@pytest.mark.slow
@pytest.mark.parametrize("notebook", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_executes_and_asserts_its_result(notebook, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(notebook.parent, workdir)
    run, _ = execute_notebook(workdir / notebook.name, workdir, timeout=1200, size="quick", progress=False)
    assert run.status == "ok", f"{notebook.name} failed: {run.error}"
    assert run.result, f"{notebook.name} did not call nl.report_result() after its closing checks"


def test_every_lesson_ends_with_summary_exercises_and_a_reported_check():
    import nbformat

    for path in LESSONS:
        nb = nbformat.read(path, as_version=4)
        headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                    if line.startswith("#")]
        assert any("Summary" in h for h in headings), f"{path.name} has no Summary"
        assert any("Exercises" in h for h in headings), f"{path.name} has no Exercises"
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert any("report_result" in s for s in code[-3:]), f"{path.name} does not report its result at the end"
        assert any("assert" in s for s in code[-3:]), f"{path.name} does not assert its result at the end"
