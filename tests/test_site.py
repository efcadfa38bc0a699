"""``noisylabels build`` writes a static course site under its output folder: an index with
the lessons in order, executed lesson pages with their figures, the student versions of
the homework (never the solutions), the results table; no page needs the network.
The site of a real lesson's quick build is checked in tests/test_notebooks.py, where the
lesson is executed once."""

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from noisylabels.build import build

SECRET = "SECRET_REFERENCE_SOLUTION_LINE"


def _write(path: Path, cells) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def tiny_course(tmp_path) -> Path:
    """A two-lesson, one-homework course shaped like the real one (a few seconds to build)."""
    root = tmp_path / "course"
    (root / "nbgrader_config.py").parent.mkdir(parents=True)
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    for number, name in (("02", "second_topic"), ("01", "first_topic")):
        _write(root / "lessons" / f"{number}_{name}.ipynb", [
            new_markdown_cell(f"# Lesson {number}: {name.replace('_', ' ')}\n\nThe loss $\\ell(x) = x^2$."),
            new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()"),
            new_code_cell(f"print('NOISYLABELS RESULT: lesson {number} shown')"),
        ])
    _write(root / "solutions" / "hw01_tiny" / "hw01_tiny.ipynb", [
        new_markdown_cell("# Homework 01: tiny\n\nImplement $f$."),
        new_code_cell(f"def f():\n    ### BEGIN SOLUTION\n    return '{SECRET}'\n    ### END SOLUTION"),
    ])
    _write(root / "assignments" / "hw01_tiny" / "hw01_tiny.ipynb", [
        new_markdown_cell("# Homework 01: tiny\n\nImplement $f$."),
        new_code_cell("def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()"),
    ])
    return root


def _local_targets(page: Path) -> list[str]:
    return re.findall(r'<(?:script|img|link)[^>]*?(?:src|href)="([^"]+)"', page.read_text(encoding="utf-8"))


def test_build_writes_an_offline_site_with_lessons_in_order_and_homework_without_solutions(tiny_course):
    out = tiny_course / "build"
    runs = build(root=tiny_course, out=out, size="quick", progress=False, timeout=120)
    assert [r.status for r in runs] == ["ok"] * 3, [r.error for r in runs]

    index = (out / "index.html").read_text(encoding="utf-8")
    links = re.findall(r"href='([^']+)'", index)
    assert links == ["lessons/01_first_topic.html", "lessons/02_second_topic.html", "homework/hw01_tiny.html"]
    assert "Lesson 01: first topic" in index and "lesson 02 shown" in index  # titles, results table
    assert "href='solutions" not in index  # the results table names them; no page of theirs is linked

    lesson = out / "lessons" / "01_first_topic.html"
    assert "data:image/png;base64," in lesson.read_text(encoding="utf-8"), "the figure is embedded"

    homework = (out / "homework" / "hw01_tiny.html").read_text(encoding="utf-8")
    assert "NotImplementedError" in homework and SECRET not in homework
    assert "Implement" in homework

    for page in [out / "index.html", *out.glob("lessons/*.html"), *out.glob("homework/*.html")]:
        for target in _local_targets(page):
            if target.startswith("data:"):
                continue
            assert "://" not in target and not target.startswith("//"), f"{page.name} loads {target}"
            assert (page.parent / target.split("?")[0]).exists(), f"{page.name}: {target} is missing"
    mathjax = [t for t in _local_targets(lesson) if "MathJax.js" in t]
    assert mathjax == ["../_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"]


def test_site_lists_a_lesson_not_built_yet_without_a_link(tiny_course):
    out = tiny_course / "build"
    build(root=tiny_course, out=out, names=["01_first"], size="quick", progress=False, timeout=120)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "href='lessons/01_first_topic.html'" in index
    assert "lessons/02_second_topic.html" not in index and "not built yet" in index
