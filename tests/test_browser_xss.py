"""A hostile homework 1 submission opened by the instructor and by the student: nothing it
carries runs.

The submission is the solution of homework 1 plus what a student can add: cells that
display HTML with ``<script>``, ``IPython.display.Javascript``, ``<img onerror=...>`` in an
HTML output, in a markdown output and in a markdown answer cell, ``javascript:`` links,
SVG with ``onload`` and ``<script>``, a widget view, and widget state in the notebook's
metadata. Each payload, if it ran, would set ``document.title``, record itself in
``window.__pwned`` and ``PUT`` a file into the course folder through ``/api/contents`` with
the page's XSRF token (what a real attack does with the instructor's session).

It goes through the real ``nbgrader autograde`` and ``generate_feedback`` (course set-up
shared with tests/test_nbgrader_homeworks.py), then headless Chromium opens formgrader's
submission view in a real ``noisylabels lab --instructor`` and the feedback HTML, clicks
the links, and finds no title change, no ``window.__pwned``, no request to ``/api/`` and
no file written. A control renders the same payload cells, executed by a plain kernel,
with plain nbconvert, and sees them run: the detector works.
Slow (runs with ``CI=true`` or ``--run-slow``).
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest

from lab_server import TOKEN, Lab, browser  # noqa: F401 (browser is a fixture)
from test_nbgrader_homeworks import ROOT, _course, _run, _submission

pytestmark = pytest.mark.slow

NAME = "hw01_label_corruption"
STUDENT = "mallory"
LINKS = ("click-me-md", "click-me-html")  # javascript: links, clicked in every view


def _attack(tag: str) -> str:
    """JavaScript that marks the page and writes pwned_<tag>.txt with the page's session."""
    return ("document.title='PWNED-" + tag + "';window.__pwned=(window.__pwned||[]).concat(['" + tag + "']);"
            "m=document.cookie.match(/_xsrf=([^;]*)/);"
            "fetch('/api/contents/pwned_" + tag + ".txt',{method:'PUT',credentials:'include',"
            "headers:{'X-XSRFToken':m?decodeURIComponent(m[1]):'','Content-Type':'application/json'},"
            "body:JSON.stringify({type:'file',format:'text',content:'" + tag + "'})});")


SVG = ("<svg xmlns='http://www.w3.org/2000/svg' width='40' height='20' onload=\"" + _attack("svg_onload") + "\">"
       "<script>" + _attack("svg_script") + "</script><rect width='40' height='20' fill='teal'/></svg>")
PAYLOAD_CELLS = [
    ("code", "from IPython.display import HTML, Javascript, Markdown, SVG, display\n"
             f"display(HTML({('<b>kept-bold</b><script>' + _attack('script_tag') + '</script>')!r}))"),
    ("code", f"Javascript({_attack('javascript_display')!r})"),
    ("code", f"display(HTML({('<img src=x onerror=' + chr(34) + _attack('img_output') + chr(34) + '>')!r}))"),
    ("code", f"display(HTML({('<a href=' + chr(34) + 'javascript:' + _attack('link_html') + chr(34) + '>click-me-html</a>')!r}))"),
    ("code", f"display(SVG({SVG!r}))\n"
             f"display(HTML({('<svg onload=' + chr(34) + _attack('inline_svg') + chr(34) + '></svg>')!r}))"),
    ("code", f"display(Markdown({('<img src=x onerror=' + chr(34) + _attack('markdown_output') + chr(34) + '>')!r}))"),
    ("code", "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'w1', 'version_major': 2, "
             "'version_minor': 0}, 'text/plain': 'widget-fallback'}, raw=True)"),
    ("markdown", "My answer, **kept-markdown**.\n\n<img src=x onerror=\"" + _attack("img_markdown_cell") + "\">\n\n"
                 "[click-me-md](javascript:" + _attack("link_markdown").replace("(", "%28").replace(")", "%29") + ")"),
]
WIDGET_STATE = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0, "state": {
    "w1": {"model_name": "HTMLModel", "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
           "state": {"value": "<img src=x onerror=\"" + _attack("widget_state") + "\">"}}}}}


def _with_payloads(nb):
    """``nb`` with the payload cells after its setup cell and widget state in its metadata."""
    setup = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    cells = [nbformat.v4.new_code_cell(s) if kind == "code" else nbformat.v4.new_markdown_cell(s)
             for kind, s in PAYLOAD_CELLS]
    nb.cells[setup + 1:setup + 1] = cells
    nb.metadata["widgets"] = WIDGET_STATE
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A course with homework 1 registered, the hostile submission autograded, feedback generated."""
    tmp = tmp_path_factory.mktemp("xss")
    course, env = _course(tmp, NAME)
    shutil.copytree(ROOT / "jupyter", course / "jupyter")  # noisylabels lab's settings
    _run([sys.executable, "-m", "noisylabels.cli", "assignments", NAME, "--register"], course, env)
    released = course / "assignments" / NAME / f"{NAME}.ipynb"
    source = course / "solutions" / NAME / f"{NAME}.ipynb"
    folder = course / "submitted" / STUDENT / NAME
    folder.mkdir(parents=True)
    nbformat.write(_with_payloads(_submission(released, source)), folder / f"{NAME}.ipynb")
    _run([sys.executable, "-m", "nbgrader", "autograde", NAME], course, env)
    _run([sys.executable, "-m", "nbgrader", "generate_feedback", NAME], course, env)
    _run([sys.executable, "-m", "nbgrader", "export", "--to", str(tmp / "grades.csv")], course, env)
    return course


def _pwned_files(course: Path) -> list[str]:
    return sorted(str(p.relative_to(course)) for p in course.rglob("pwned*"))


def _watch(page) -> list[str]:
    """Every request the page makes, as URLs."""
    seen = []
    page.on("request", lambda r: seen.append(r.url))
    return seen


def _click_links(page):
    for text in LINKS:
        link = page.locator("a", has_text=text).first  # not the code cell that wrote it
        link.click(timeout=10_000)
        page.wait_for_timeout(500)


def _ran(page) -> list[str]:
    return page.evaluate("() => window.__pwned || []")


def _api_requests(urls: list[str]) -> list[str]:
    return [u for u in urls if urllib.parse.urlsplit(u).path.startswith("/api/") or "pwned" in u]


def test_autograded_notebook_keeps_grades_text_and_check_data_but_no_active_content(graded):
    nb = nbformat.read(graded / "autograded" / STUDENT / NAME / f"{NAME}.ipynb", as_version=4)
    # what renderers show as markup: outputs, markdown sources, metadata (code sources are shown as text)
    text = json.dumps([[c.get("outputs"), c.source if c.cell_type == "markdown" else "", c.metadata] for c in nb.cells]
                      + [nb.metadata])
    for active in ("application/javascript", "application/vnd.jupyter.widget-view+json", "<script", "onerror=",
                   "onload=", "javascript:"):
        assert active not in text, active
    assert "widgets" not in nb.metadata
    kept = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "kept-bold" in kept and "widget-fallback" in kept and "image/png" in kept
    assert any("kept-markdown" in c.source for c in nb.cells if c.cell_type == "markdown")
    # the grade comes from the check data and the grader, untouched: the solution's full 12 points
    rows = (graded.parent / "grades.csv").read_text().splitlines()
    header, row = rows[0].split(","), dict(zip(rows[0].split(","), rows[1].split(",")))
    assert "raw_score" in header and float(row["raw_score"]) == 12.0, row


def test_formgrader_submission_view_runs_nothing_from_the_submission(graded, browser, tmp_path):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gb:
        submission_id = gb.find_submission_notebook(NAME, NAME, STUDENT).id
    lab = Lab(graded, tmp_path / "home", instructor=True)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(f"{lab.url}/lab?token={TOKEN}")  # log in: the instructor's cookie and XSRF token
        page.wait_for_selector("#jp-main-dock-panel", state="visible", timeout=120_000)
        requests = _watch(page)
        response = page.goto(f"{lab.url}/formgrader/submissions/{submission_id}/")
        page.wait_for_selector("text=kept-bold", timeout=60_000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(2000)
        _click_links(page)
        page.screenshot(path=str(tmp_path / "formgrader_submission.png"), full_page=True)
        ran, title = _ran(page), page.title()
        bold = page.locator("b", has_text="kept-bold").count()
        # the second wall: whatever runs in the page cannot send anything to another host
        other_host = lab.url.replace("127.0.0.1", "localhost") + "/api/status"
        exfiltration = page.evaluate("u => fetch(u, {mode: 'no-cors'}).then(() => 'sent', () => 'refused')", other_host)
        context.close()
    finally:
        lab.stop()
    assert ran == [] and "PWNED" not in title, (ran, title)
    assert _api_requests(requests) == [], _api_requests(requests)
    assert _pwned_files(graded) == []
    assert bold == 1  # honest HTML is still shown as HTML
    csp = response.headers.get("content-security-policy", "")
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp, csp
    assert exfiltration == "refused"


def test_feedback_html_runs_nothing_from_the_submission(graded, browser, tmp_path):
    feedback = graded / "feedback" / STUDENT / NAME / f"{NAME}.html"
    ran, title, requests = _open_file(browser, feedback, tmp_path / "feedback.png")
    assert ran == [] and "PWNED" not in title, (ran, title)
    assert _api_requests(requests) == [], _api_requests(requests)


def test_the_same_payloads_do_run_when_rendered_without_sanitizing(browser, tmp_path):
    """The control: the payload cells executed by a plain kernel and rendered by plain nbconvert."""
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    nb.cells[0].metadata["nbgrader"] = {"grade_id": "setup"}
    nb = _with_payloads(nb)
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    page_file = tmp_path / "plain.html"
    page_file.write_text(HTMLExporter().from_notebook_node(nb)[0])
    ran, title, _ = _open_file(browser, page_file, tmp_path / "plain.png")
    expected = {"script_tag", "javascript_display", "img_output", "link_html", "inline_svg", "markdown_output",
                "img_markdown_cell", "link_markdown"}
    assert expected <= set(ran) and title.startswith("PWNED"), (ran, title)


def _open_file(browser, path: Path, screenshot: Path):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    requests = _watch(page)
    page.goto(path.as_uri())
    page.wait_for_timeout(2000)
    _click_links(page)
    page.screenshot(path=str(screenshot), full_page=True)
    ran, title = _ran(page), page.title()
    context.close()
    return ran, title, requests
