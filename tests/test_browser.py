"""The course as students meet it: ``noisylabels lab`` started for real on a free localhost
port, driven in a real headless Chromium (Debian's ``chromium``) through Playwright.

Slow tests (they run with ``CI=true`` or ``--run-slow``). Without a browser or Playwright
they skip locally and fail in CI. Screenshots go to each test's ``tmp_path``.
One JupyterLab and one Chromium at a time; both are stopped when the module ends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lab_server import TOKEN, Lab, browser  # noqa: F401 (browser is a fixture)
from lab_server import chromium as _chromium

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LESSON = "lessons/01_label_noise_and_memorization.ipynb"
FIRST_CELLS = 19  # through the first training run (early stop) and its plot
HOMEWORK = "assignments/hw01_label_corruption/hw01_label_corruption.ipynb"
FINISHED_HOMEWORK = "assignments/hw01_label_corruption/hw01_finished.ipynb"
NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in front
INSTRUCTOR_WORDS = ("Nbgrader", "Formgrader", "Create Assignment", "Assignment List", "Course List",
                    "exchange directory", "Error fetching courses")


def _make_course(folder: Path) -> Path:
    """A student's copy of the course: the lessons, homework 1's student version, the settings."""
    folder.mkdir(parents=True)
    shutil.copytree(ROOT / "lessons", folder / "lessons", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "assignments" / "hw01_label_corruption", folder / "assignments" / "hw01_label_corruption",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    shutil.copytree(ROOT / "jupyter", folder / "jupyter")
    shutil.copy(ROOT / "nbgrader_config.py", folder / "nbgrader_config.py")
    _write_finished_homework(ROOT / HOMEWORK, ROOT / "solutions" / Path(HOMEWORK).relative_to("assignments"),
                             folder / FINISHED_HOMEWORK)
    return folder


def _write_finished_homework(release: Path, source: Path, target: Path) -> None:
    """The student version as a student who solved every part hands it in: each solution
    cell of the release gets the source's solution code (markers dropped), nothing else changes."""
    solved = {}
    for cell in json.loads(source.read_text())["cells"]:
        grade = cell.get("metadata", {}).get("nbgrader", {})
        if grade.get("solution"):
            lines = "".join(cell["source"]).splitlines(keepends=True)
            solved[grade["grade_id"]] = "".join(l for l in lines if l.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    nb = json.loads(release.read_text())
    filled = 0
    for cell in nb["cells"]:
        grade = cell.get("metadata", {}).get("nbgrader", {})
        if grade.get("solution") and cell["cell_type"] == "code":
            cell["source"] = solved[grade["grade_id"]]
            filled += 1
    assert filled >= 4, f"{release} has only {filled} solution cells"
    target.write_text(json.dumps(nb, indent=1))


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory, browser):
    home = tmp_path_factory.mktemp("student")
    lab = Lab(_make_course(home / "course"), home)
    yield lab
    lab.stop()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.external_requests = []
    pg.on("request", lambda r: pg.external_requests.append(r.url)
          if not r.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:", "file:")) else None)
    yield pg
    pg.screenshot(path=str(tmp_path / "final.png"))
    context.close()


def _open_lab(page, lab, path=""):
    page.goto(f"{lab.url}/{path}?reset&token={TOKEN}")  # reset: not the tabs an earlier test left open
    page.wait_for_selector("#jp-main-dock-panel", state="visible")
    page.wait_for_selector(".jp-DirListing-content", state="visible")
    page.wait_for_timeout(3000)  # let late plugins (menus, notifications) load


def _dialogs(page) -> list[str]:
    return [d.inner_text() for d in page.query_selector_all(".jp-Dialog")]


def _open_notebook(page, lab, path):
    _open_lab(page, lab, f"lab/tree/{path}")
    page.wait_for_selector(f"{NB} .jp-Cell", state="visible")
    page.wait_for_function(  # the kernel is up
        "() => { const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');"
        " return !s || s.getAttribute('data-status') === 'idle'; }", timeout=120_000)


def test_student_lab_opens_on_lessons_without_instructor_tools_or_error_dialogs(student_lab, page, tmp_path):
    page.goto(f"{student_lab.url}/?token={TOKEN}")  # the default URL noisylabels lab sets up
    page.wait_for_selector(".jp-DirListing-content", state="visible")
    page.wait_for_selector(f"text={Path(LESSON).name}", timeout=60_000)
    page.wait_for_timeout(4000)
    page.screenshot(path=str(tmp_path / "student_start.png"))
    assert "/lab/tree/lessons" in page.url
    menus = [m.inner_text() for m in page.query_selector_all(".lm-MenuBar-itemLabel")]
    assert "File" in menus and "Nbgrader" not in menus, menus
    text = page.inner_text("body")
    shown = [w for w in INSTRUCTOR_WORDS if w in text]
    assert not shown, f"the student set-up shows {shown}"
    assert _dialogs(page) == []
    # the instructor tools are switched off on the server too, not only hidden
    page.goto(f"{student_lab.url}/formgrader?token={TOKEN}")
    assert "404" in page.title() or "Not Found" in page.inner_text("body")


def test_first_cells_of_lesson_01_draw_figures_and_finish_progress_bars_cleanly(student_lab, page, tmp_path):
    _open_notebook(page, student_lab, LESSON)
    page.click(f"{NB} .jp-Cell >> nth=0")
    for _ in range(FIRST_CELLS):
        page.keyboard.press("Shift+Enter")
        page.wait_for_timeout(150)
    page.wait_for_function(
        """n => { const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')].slice(0, n);
                  return cells.filter(c => c.classList.contains('jp-CodeCell')).every(c => {
                      const p = c.querySelector('.jp-InputPrompt'); return p && /\\[\\d+\\]/.test(p.textContent); }); }""",
        arg=FIRST_CELLS, timeout=600_000, polling=2000)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(tmp_path / "lesson01_first_cells.png"), full_page=False)
    outputs = f"{NB} .jp-OutputArea-output"
    errors = page.query_selector_all(f"{outputs}[data-mime-type='application/vnd.jupyter.error']")
    assert not errors, errors[0].inner_text()[:2000]
    stderr = [e.inner_text() for e in page.query_selector_all(f"{outputs}[data-mime-type='application/vnd.jupyter.stderr']")]
    assert not any("Error" in s or "Traceback" in s for s in stderr), stderr
    assert len(page.query_selector_all(f"{NB} .jp-RenderedImage img")) >= 3
    red = page.query_selector_all(f"{NB} .jp-OutputArea [class*='danger']")
    assert not red, "a progress bar ended red"
    bars = [b.inner_text() for b in page.query_selector_all(f"{NB} .widget-hbox")]
    stopped = [b for b in bars if "stopped: train acc 0.995 reached" in b.replace("\u2007", " ")]
    assert stopped, f"the early-stopped training shows no finished bar with its reason: {bars}"
    page.locator(f"{NB} .widget-hbox", has_text="stopped").first.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "lesson01_stopped_bar.png"))
    assert not [u for u in page.external_requests if "://" in u], page.external_requests


def test_validate_on_homework_stub_reports_the_unfinished_parts(student_lab, page, tmp_path):
    _open_notebook(page, student_lab, HOMEWORK)
    button = page.locator(f"{NB} .jp-Toolbar >> text=Validate")
    button.click()
    dialog = page.wait_for_selector(".jp-Dialog", timeout=600_000)
    page.wait_for_function("() => !/Validating/.test(document.querySelector('.jp-Dialog')?.innerText || '')",
                           timeout=600_000, polling=1000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "hw01_validate.png"))
    text = page.inner_text(".jp-Dialog")
    # the released stub: Validate stops at the first check cell, on the stub's NotImplementedError
    assert dialog is not None and text.startswith("Validation Results"), text[:3000]
    assert "The following cell failed" in text and "NotImplementedError" in text, text[:3000]
    assert "corrupt_uniform" in text, text[:3000]
    assert "Success! Your notebook passes all the tests." not in text


def test_validate_on_a_finished_homework_reports_success(student_lab, page, tmp_path):
    _open_notebook(page, student_lab, FINISHED_HOMEWORK)
    page.locator(f"{NB} .jp-Toolbar >> text=Validate").click()
    page.wait_for_selector(".jp-Dialog", timeout=600_000)
    page.wait_for_function("() => !/Validating/.test(document.querySelector('.jp-Dialog')?.innerText || '')",
                           timeout=600_000, polling=1000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "hw01_finished_validate.png"))
    text = page.inner_text(".jp-Dialog")
    assert text.startswith("Validation Results"), text[:3000]
    assert "Success! Your notebook passes all the tests." in text, text[:3000]
    assert "failed" not in text and "Error" not in text, text[:3000]


@pytest.fixture(scope="module")
def instructor_lab(tmp_path_factory, browser, student_lab):
    student_lab.stop()  # one JupyterLab at a time on the shared machine
    home = tmp_path_factory.mktemp("instructor")
    course = _make_course(home / "course")
    shutil.copytree(ROOT / "solutions" / "hw01_label_corruption", course / "solutions" / "hw01_label_corruption",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    lab = Lab(course, home, instructor=True)
    yield lab
    lab.stop()


def _menu(page, top: str, item: str):
    page.click(f".lm-MenuBar-itemLabel:text-is('{top}')")
    page.click(f".lm-Menu-itemLabel:text-is('{item}')")


def test_instructor_lab_has_nbgrader_tools_without_exchange_or_course_errors(instructor_lab, page, tmp_path):
    _open_lab(page, instructor_lab)
    menus = [m.inner_text() for m in page.query_selector_all(".lm-MenuBar-itemLabel")]
    assert "Nbgrader" in menus, menus
    _menu(page, "Nbgrader", "Assignment List")
    page.wait_for_timeout(4000)
    _menu(page, "Nbgrader", "Course List")
    page.wait_for_timeout(4000)
    page.screenshot(path=str(tmp_path / "instructor_lists.png"))
    text = page.inner_text("body")
    for bad in ("exchange directory does not exist", "Error fetching courses"):
        assert bad not in text, bad
    _menu(page, "Nbgrader", "Formgrader")
    frame = page.frame_locator("iframe").first
    frame.locator("text=hw01_label_corruption").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(tmp_path / "instructor_formgrader.png"))
    assert _dialogs(page) == []
    assert (instructor_lab.home / "exchange").is_dir()  # created by noisylabels lab --instructor
    assert not [u for u in page.external_requests if "mathjax" in u.lower()], page.external_requests


def test_formgrader_pages_render_math_with_the_servers_mathjax_and_its_fonts(instructor_lab, browser, tmp_path):
    """The formgrader's grading view calls nbconvert's MathJax macro with its CDN default; the
    instructor set-up's template folder loads jupyter-server-mathjax's copy instead, under the
    server's base URL, with the STIX-Web fonts that package ships (no missing-font requests)."""
    from noisylabels.lab import lab_command

    _, env = lab_command(instructor_lab.course, instructor=True)
    page_file = instructor_lab.course / "formgrade_math.html"
    script = (
        "import nbformat, sys\n"
        "from traitlets.config import Config\n"
        "from nbconvert.exporters import HTMLExporter\n"
        "import nbgrader.server_extensions.formgrader.handlers as h\n"
        "c = Config(); c.HTMLExporter.template_name = 'formgrade'\n"
        "c.HTMLExporter.extra_template_basedirs = [h.template_path]\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('$x^2$ and $$\\\\sum_i w_i$$')])\n"
        "body, _ = HTMLExporter(config=c).from_notebook_node(nb, resources=dict(base_url='', notebook_id='x', index=0, total=1))\n"
        "open(sys.argv[1], 'w').write(body)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(page_file)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    body = page_file.read_text()
    assert "/static/jupyter_server_mathjax/MathJax.js" in body and "cdnjs" not in body and "STIX-Web" in body
    page = browser.new_page()
    failed, requests = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(f"{instructor_lab.url}/files/formgrade_math.html?token={TOKEN}")
    page.wait_for_selector("span.MathJax", timeout=60_000)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(tmp_path / "formgrade_math.png"))
    rendered = len(page.query_selector_all("span.MathJax"))
    errors = page.query_selector_all(".MathJax_Error")
    page.close()
    assert rendered >= 2 and not errors
    assert failed == [], failed  # no missing script or font file
    mathjax = [u for u in requests if "jupyter_server_mathjax" in u]
    # the fonts the package ships (STIX-Web), not MathJax's default TeX fonts, which it lacks
    assert any("/STIX-Web/" in u for u in mathjax) and not any("/fonts/TeX/" in u for u in mathjax), mathjax
    assert [u for u in requests if not u.startswith((instructor_lab.url, "about:"))] == [], requests


def test_site_pages_render_math_from_the_local_mathjax_without_the_network(browser, tmp_path):
    """The course site's homework 4 page (it has formulas), opened from the file system."""
    _chromium()
    from noisylabels.site import write_site

    index = write_site(ROOT, tmp_path / "site")
    context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(index.as_uri())
    page.click("text=Homework 04")
    page.wait_for_selector("span.MathJax, span.MathJax_CHTML, span.MathJax_SVG", timeout=60_000)
    page.wait_for_timeout(1000)
    math = page.query_selector_all("span.MathJax, span.MathJax_CHTML, span.MathJax_SVG")
    page.locator("span.MathJax, span.MathJax_CHTML, span.MathJax_SVG").first.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "site_hw04_math.png"))
    errors = page.query_selector_all(".MathJax_Error, merror")
    context.close()
    assert len(math) >= 2 and not errors
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert any("_static/mathjax/MathJax.js" in u for u in requests)
