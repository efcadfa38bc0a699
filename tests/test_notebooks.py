"""Every lesson notebook executes headless in its quick setting and reports its result.

Slow: runs when CI=true or with --run-slow. Each lesson is executed once in CI, here, by
``noisylabels build`` (lesson 01 with the course site, whose pages are checked too). The
solution notebooks execute in tests/test_assignments.py, under `nbgrader validate`.
"""

import re

import pytest

from noisylabels.build import build
from noisylabels.course import find_root, lesson_notebooks

ROOT = find_root()
LESSONS = lesson_notebooks(ROOT)
SITE_LESSON = "01_label_noise_and_memorization"  # the lesson whose build also writes the course site


@pytest.mark.slow
@pytest.mark.parametrize("notebook", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_executes_and_asserts_its_result(notebook, tmp_path):
    out = tmp_path / "build"
    site = notebook.stem == SITE_LESSON
    (run,) = build(root=ROOT, out=out, names=[f"lessons/{notebook.stem}"], size="quick", timeout=1200,
                   html=site, progress=False, jobs=1)
    assert run.status == "ok", f"{notebook.name} failed: {run.error}"
    assert run.result, f"{notebook.name} did not call nl.report_result() after its closing checks"
    assert (out / "lessons" / notebook.name).exists(), "the executed notebook is kept"
    if site:
        _check_site_of_one_lesson(out, notebook.stem)


def _local_targets(page) -> list[str]:
    return re.findall(r'<(?:script|img|link)[^>]*?(?:src|href)="([^"]+)"', page.read_text(encoding="utf-8"))


def _check_site_of_one_lesson(out, stem):
    """The site of a build of one lesson: the index links it and every homework's student
    version, its page embeds its figures and loads MathJax from the site, not a CDN."""
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f"href='lessons/{stem}.html'" in index
    assert index.count("href='homework/") == len(list(ROOT.glob("assignments/*/*.ipynb")))
    page = out / "lessons" / f"{stem}.html"
    assert page.read_text(encoding="utf-8").count("data:image/png;base64,") >= 3
    assert "https://cdnjs" not in "".join(_local_targets(page))
    assert (out / "_static" / "mathjax" / "MathJax.js").exists()


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
